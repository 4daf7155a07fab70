"""Optimizer steps on the CPU: one kernel over the flat storage of all a model's parameters.

param, grad, velocity, exp_avg, exp_avg_sq are 1-D arrays of one length (see ``params.py``: every
Parameter is a view into one flat buffer, so a step is one pass over memory, not one call per
tensor). Scalars are cast to the array dtype before the loop.
"""

from numba import njit, prange

from .. import shared_math

_math = shared_math.compiled("cpu", njit(inline="always"))
_sgd_element = _math.sgd_element
_adam_element = _math.adam_element


@njit(parallel=True, cache=True)
def _sgd(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    for i in prange(param.size):
        param[i], v = _sgd_element(param[i], grad[i], velocity[i], lr, momentum, weight_decay, nesterov)
        if momentum != 0:
            velocity[i] = v


@njit(parallel=True, cache=True)
def _adam(param, grad, exp_avg, exp_avg_sq, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
          weight_decay, decay_factor, bias_correction2_sqrt):  # fmt: skip
    # The scalars one by one: numba inlines no call with *args.
    for i in prange(param.size):
        param[i], exp_avg[i], exp_avg_sq[i] = _adam_element(
            param[i], grad[i], exp_avg[i], exp_avg_sq[i], step_size, beta1, one_minus_beta1, beta2,
            one_minus_beta2, eps, weight_decay, decay_factor, bias_correction2_sqrt,
        )  # fmt: skip


def sgd_step(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """PyTorch's SGD (dampening 0): v = momentum v + g; p -= lr (g + momentum v if nesterov else v)."""
    t = param.dtype.type
    _sgd(param, grad, velocity, t(lr), t(momentum), t(weight_decay), bool(nesterov))


def adam_step(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """Adam (L2 weight decay) or AdamW (decoupled=True), bias-corrected for ``step`` (1-based)."""
    t = param.dtype.type
    scalars = shared_math.adam_scalars(lr, beta1, beta2, eps, weight_decay, decoupled, step)
    _adam(param, grad, exp_avg, exp_avg_sq, *(t(v) for v in scalars))


_ema_element = _math.ema_element


@njit(parallel=True, cache=True)
def _ema(average, value, decay, one_minus_decay):
    for i in prange(average.size):
        average[i] = _ema_element(average[i], value[i], decay, one_minus_decay)


def ema_update(average, value, decay):
    """average (M,) = decay average + (1 - decay) value (M,): one step of an exponential moving
    average of weights (a run's flat parameter storage, or a buffer)."""
    t = average.dtype.type
    _ema(average.reshape(-1), value.reshape(-1), t(decay), t(1.0 - decay))
