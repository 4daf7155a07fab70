"""Optimizer steps on the CPU: one kernel over the flat storage of all a model's parameters.

param, grad, velocity, exp_avg, exp_avg_sq are 1-D arrays of one length (see ``params.py``: every
Parameter is a view into one flat buffer, so a step is one pass over memory, not one call per
tensor). Scalars are cast to the array dtype before the loop.
"""

import math

from numba import njit, prange


@njit(parallel=True, cache=True)
def _sgd(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    for i in prange(param.size):
        g = grad[i] + weight_decay * param[i]
        if momentum != 0:
            v = momentum * velocity[i] + g
            velocity[i] = v
            g = g + momentum * v if nesterov else v
        param[i] -= lr * g


@njit(parallel=True, cache=True)
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
    # The "1 - x" factors arrive precomputed in the array dtype: an int literal 1 in the loop
    # would widen float32 arithmetic to float64.
    for i in prange(param.size):
        g = grad[i] + weight_decay * param[i]
        param[i] *= decay_factor
        m = beta1 * exp_avg[i] + one_minus_beta1 * g
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] -= step_size * m / (math.sqrt(v) / bias_correction2_sqrt + eps)


def sgd_step(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """PyTorch's SGD (dampening 0): v = momentum v + g; p -= lr (g + momentum v if nesterov else v)."""
    t = param.dtype.type
    _sgd(param, grad, velocity, t(lr), t(momentum), t(weight_decay), bool(nesterov))


def adam_step(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """Adam (L2 weight decay) or AdamW (decoupled=True), bias-corrected for ``step`` (1-based)."""
    t = param.dtype.type
    step_size = lr / (1.0 - beta1**step)
    bc2_sqrt = math.sqrt(1.0 - beta2**step)
    # Adam folds the decay into the gradient (L2); AdamW shrinks the weights directly.
    l2 = 0.0 if decoupled else weight_decay
    decay_factor = 1.0 - lr * weight_decay if decoupled else 1.0
    _adam(
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
