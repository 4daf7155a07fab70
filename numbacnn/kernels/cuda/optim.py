"""Optimizer steps on CUDA: one grid-stride kernel over the flat storage of all parameters.

Twins of ``kernels/cpu/optim.py`` (same formulas, scalars precomputed on the host in the array
dtype so float32 stays float32 on the GPU).
"""

import math

from numba import cuda

from .launch import launch_1d, require_device


@cuda.jit
def _sgd(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] + weight_decay * param[i]
        if momentum != 0:
            v = momentum * velocity[i] + g
            velocity[i] = v
            g = g + momentum * v if nesterov else v
        param[i] -= lr * g


@cuda.jit
def _adam(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    step_size,
    beta1,
    one_minus_beta1,
    beta2,
    one_minus_beta2,
    eps,
    weight_decay,
    decay_factor,
    bias_correction2_sqrt,
):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        g = grad[i] + weight_decay * param[i]
        param[i] *= decay_factor
        m = beta1 * exp_avg[i] + one_minus_beta1 * g
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] -= step_size * m / (math.sqrt(v) / bias_correction2_sqrt + eps)


def sgd_step(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """PyTorch's SGD (dampening 0): v = momentum v + g; p -= lr (g + momentum v if nesterov else v)."""
    require_device("sgd_step", param=param, grad=grad, velocity=velocity)
    t = param.dtype.type
    launch_1d(_sgd, param.size, param, grad, velocity, t(lr), t(momentum), t(weight_decay), bool(nesterov))


def adam_step(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """Adam (L2 weight decay) or AdamW (decoupled=True), bias-corrected for ``step`` (1-based)."""
    require_device("adam_step", param=param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    t = param.dtype.type
    step_size = lr / (1.0 - beta1**step)
    bc2_sqrt = math.sqrt(1.0 - beta2**step)
    l2 = 0.0 if decoupled else weight_decay
    decay_factor = 1.0 - lr * weight_decay if decoupled else 1.0
    launch_1d(
        _adam,
        param.size,
        param,
        grad,
        exp_avg,
        exp_avg_sq,
        t(step_size),
        t(beta1),
        t(1.0 - beta1),
        t(beta2),
        t(1.0 - beta2),
        t(eps),
        t(l2),
        t(decay_factor),
        t(bc2_sqrt),
    )
