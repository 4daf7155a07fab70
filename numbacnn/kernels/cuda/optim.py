"""Optimizer steps on CUDA: one grid-stride kernel over the flat storage of all parameters.

Twins of ``kernels/cpu/optim.py`` (same formulas, scalars precomputed on the host in the array
dtype so float32 stays float32 on the GPU).
"""

from numba import cuda

from .. import shared_math
from .launch import flat, launch_1d, require_device

_math = shared_math.compiled("cuda", cuda.jit(device=True))
_sgd_element = _math.sgd_element
_adam_element = _math.adam_element


@cuda.jit
def _sgd(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        param[i], v = _sgd_element(param[i], grad[i], velocity[i], lr, momentum, weight_decay, nesterov)
        if momentum != 0:
            velocity[i] = v


@cuda.jit
def _adam(param, grad, exp_avg, exp_avg_sq, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
          weight_decay, decay_factor, bias_correction2_sqrt):  # fmt: skip
    # The scalars one by one: numba inlines no call with *args.
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        param[i], exp_avg[i], exp_avg_sq[i] = _adam_element(
            param[i], grad[i], exp_avg[i], exp_avg_sq[i], step_size, beta1, one_minus_beta1, beta2,
            one_minus_beta2, eps, weight_decay, decay_factor, bias_correction2_sqrt,
        )  # fmt: skip


def sgd_step(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """PyTorch's SGD (dampening 0): v = momentum v + g; p -= lr (g + momentum v if nesterov else v)."""
    require_device("sgd_step", param=param, grad=grad, velocity=velocity)
    t = param.dtype.type
    launch_1d(_sgd, param.size, param, grad, velocity, t(lr), t(momentum), t(weight_decay), bool(nesterov))


def adam_step(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """Adam (L2 weight decay) or AdamW (decoupled=True), bias-corrected for ``step`` (1-based)."""
    require_device("adam_step", param=param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    t = param.dtype.type
    scalars = shared_math.adam_scalars(lr, beta1, beta2, eps, weight_decay, decoupled, step)
    launch_1d(_adam, param.size, param, grad, exp_avg, exp_avg_sq, *(t(v) for v in scalars))


_ema_element = _math.ema_element


@cuda.jit
def _ema(average, value, decay, one_minus_decay):
    for i in range(cuda.grid(1), average.size, cuda.gridsize(1)):
        average[i] = _ema_element(average[i], value[i], decay, one_minus_decay)


def ema_update(average, value, decay):
    """average (M,) = decay average + (1 - decay) value (M,): one step of an exponential moving
    average of weights (a run's flat parameter storage, or a buffer)."""
    require_device("ema_update", average=average, value=value)
    t = average.dtype.type
    launch_1d(_ema, average.size, flat(average), flat(value), t(decay), t(1.0 - decay))
