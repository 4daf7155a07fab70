"""Optimizer steps in NumPy over the flat 1-D parameter storage (see ``params.py``), with the
scalars cast to the array dtype first, as the compiled kernels do."""

import math

import numpy as np


def sgd_step(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """PyTorch's SGD (dampening 0): v = momentum v + g; p -= lr (g + momentum v if nesterov else v)."""
    t = param.dtype.type
    g = grad + t(weight_decay) * param
    if momentum != 0:
        v = t(momentum) * velocity + g
        velocity[...] = v
        g = g + t(momentum) * v if nesterov else v
    param -= t(lr) * g


def adam_step(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """Adam (L2 weight decay) or AdamW (decoupled=True), bias-corrected for ``step`` (1-based)."""
    t = param.dtype.type
    step_size = t(lr / (1.0 - beta1**step))
    bc2_sqrt = t(math.sqrt(1.0 - beta2**step))
    l2 = t(0.0 if decoupled else weight_decay)
    g = grad + l2 * param
    param *= t(1.0 - lr * weight_decay if decoupled else 1.0)
    m = t(beta1) * exp_avg + t(1.0 - beta1) * g
    v = t(beta2) * exp_avg_sq + t(1.0 - beta2) * g * g
    exp_avg[...] = m
    exp_avg_sq[...] = v
    param -= step_size * m / (np.sqrt(v) / bc2_sqrt + t(eps))


def ema_update(average, value, decay):
    """average (M,) = decay average + (1 - decay) value (M,): one step of an exponential moving
    average of weights (a run's flat parameter storage, or a buffer)."""
    t = average.dtype.type
    average[...] = t(decay) * average + t(1.0 - decay) * value
