"""Formulas written once in plain Python and compiled per target: every formula that the CPU and
CUDA kernels share (activations, the dropout hash, softmax and cross-entropy rows, pooling windows,
optimizer updates), so both backends compute the same thing, bit for bit where the order of
operations allows. The kernels keep only their loops (``prange`` against grid-stride).

``kernels.cpu`` compiles them with ``njit(inline="always")`` and ``kernels.cuda`` with
``cuda.jit(device=True)``, through ``compiled``, in which a helper that calls another calls its
compiled form. Use only ``math`` and numpy scalar casts here: both targets support them.
"""

import math
import types

import numpy as np

_compiled = {}


def compiled(target, jit):
    """Every helper of this module compiled by ``jit`` for ``target`` ("cpu" or "cuda"), as the
    attributes of one namespace (made once per target)."""
    if target not in _compiled:
        namespace = dict(globals())
        helpers = {}
        for name, value in globals().items():
            if isinstance(value, types.FunctionType) and value.__module__ == __name__ and name != "compiled":
                # A copy whose globals are the namespace: calls to other helpers find their
                # compiled forms there (a plain function is invisible to jitted code).
                copy = types.FunctionType(value.__code__, namespace, name, value.__defaults__, value.__closure__)
                copy.__doc__ = value.__doc__
                helpers[name] = namespace[name] = jit(copy)
        _compiled[target] = types.SimpleNamespace(**helpers)
    return _compiled[target]


def sigmoid(v, one):
    """1 / (1 + exp(-v)); ``one`` is 1 in v's dtype (a literal 1.0 would compute in float64)."""
    # Branch on the sign so that exp never overflows.
    if v >= 0:
        return one / (one + math.exp(-v))
    e = math.exp(v)
    return e / (one + e)


def hash_bits(seed, index):
    """24 random bits (an integer in [0, 2**24)) from (seed, index): the splitmix64 finaliser's top
    bits, which float32 represents exactly.

    Everything is uint64 on purpose: numba types ``int64 * uint64`` as float64, which would make
    the hash depend on rounding. uint64 arithmetic wraps modulo 2**64 on both targets.
    """
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(index) + np.uint64(0x632BE59BD9B4E019)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return z >> np.uint64(40)


def uniform_hash(seed, index):
    """A counter-based uniform number in [0, 1) from (seed, index): ``hash_bits`` / 2**24."""
    return np.float64(hash_bits(seed, index)) * (1.0 / 16777216.0)


def row_max_and_exp_sum(x, n):
    """(m, sum_k exp(x[n, k] - m)) with m the maximum of row n of x (N, K): the two reductions of
    a stable softmax (subtracting the maximum keeps exp from overflowing). A NaN in the row is
    never the maximum by ">", so it reaches the sum through exp and the row's result is NaN."""
    m = x[n, 0]
    for k in range(1, x.shape[1]):
        if x[n, k] > m:
            m = x[n, k]
    total = 0.0
    for k in range(x.shape[1]):
        total += math.exp(x[n, k] - m)
    return m, total


# Padding modes of pad2d (Conv2d's padding_mode), as the integers the kernels take.
PAD_ZEROS, PAD_REFLECT, PAD_REPLICATE, PAD_CIRCULAR = 0, 1, 2, 3


def pad_source(i, size, mode):
    """The index in [0, size) whose value the padded position ``i`` (which may lie outside)
    holds, or -1 for a zero (PAD_ZEROS outside). Reflect mirrors without repeating the edge
    (PyTorch's "reflect"), replicate repeats the edge, circular wraps around."""
    if 0 <= i < size:
        return i
    if mode == 0:
        return -1
    if mode == 1:
        return -i if i < 0 else 2 * (size - 1) - i
    if mode == 2:
        return 0 if i < 0 else size - 1
    return i % size


def pool_divisor(oy, ox, kh, kw, sh, sw, ph, pw, height, width, include_pad):
    """The divisor of average-pooling window (oy, ox), as PyTorch computes it: the window clipped
    to the padded input, counting the padding (``include_pad``) or only the real pixels. Windows
    that ceil_mode adds may run past the padding: the part outside never counts."""
    y0, x0 = oy * sh - ph, ox * sw - pw
    y1, x1 = min(y0 + kh, height + ph), min(x0 + kw, width + pw)
    if include_pad:
        return (y1 - y0) * (x1 - x0)
    return (min(y1, height) - max(y0, 0)) * (min(x1, width) - max(x0, 0))


def window_span(o, kernel, stride, padding, size):
    """(start, first, stop) of pooling window o along one axis: it starts at input index start =
    o stride - padding, and its taps i in range(first, stop) land inside [0, size)."""
    start = o * stride - padding
    return start, max(0, -start), min(kernel, size - start)


def window_mean(x, n, c, oy, ox, kh, kw, sh, sw, ph, pw, include_pad):
    """The average-pooling output (oy, ox) of plane (n, c) of x (N, C, H, W): the window's sum
    (float64, as the CPU and CUDA kernels both accumulate) over its pool_divisor."""
    height, width = x.shape[2], x.shape[3]
    y0, i0, i1 = window_span(oy, kh, sh, ph, height)
    x0, j0, j1 = window_span(ox, kw, sw, pw, width)
    acc = 0.0
    for i in range(i0, i1):
        for j in range(j0, j1):
            acc += x[n, c, y0 + i, x0 + j]
    return acc / pool_divisor(oy, ox, kh, kw, sh, sw, ph, pw, height, width, include_pad)


def plane_mean(x, n, c):
    """The mean of plane (n, c) of x (N, C, H, W), summed in float64 (global average pooling)."""
    height, width = x.shape[2], x.shape[3]
    acc = 0.0
    for iy in range(height):
        for ix in range(width):
            acc += x[n, c, iy, ix]
    return acc * (1.0 / (height * width))


def cross_entropy_row(losses, probs, logits, targets, smoothing, n):
    """losses[n] = the label-smoothed cross-entropy of softmax(logits[n]) (N, K) against
    targets[n]; probs[n] = that softmax (saved for the backward)."""
    n_classes = logits.shape[1]
    m, total = row_max_and_exp_sum(logits, n)
    log_total = math.log(total)
    mean_neg_logp = 0.0
    for k in range(n_classes):
        logp = logits[n, k] - m - log_total
        probs[n, k] = math.exp(logp)
        mean_neg_logp -= logp
    mean_neg_logp /= n_classes
    neg_logp_target = -(logits[n, targets[n]] - m - log_total)
    losses[n] = (1.0 - smoothing) * neg_logp_target + smoothing * mean_neg_logp


def cross_entropy_logit_grad(probs, targets, smoothing, scale, n, k):
    """d loss / d logits[n, k] = scale (probs[n, k] - the smoothed one-hot target)."""
    target = smoothing / probs.shape[1] + (1.0 - smoothing if k == targets[n] else 0.0)
    return scale * (probs[n, k] - target)


def softmax_row(out, x, n):
    """out[n] = softmax(x[n]) (N, K), stable (the row's maximum subtracted)."""
    m, total = row_max_and_exp_sum(x, n)
    for k in range(x.shape[1]):
        out[n, k] = math.exp(x[n, k] - m) / total


def softmax_grad_row(dx, dy, y, n):
    """dx[n] = y[n] * (dy[n] - sum_k dy[n, k] y[n, k]), y the softmax's output."""
    dot = 0.0
    for k in range(y.shape[1]):
        dot += dy[n, k] * y[n, k]
    for k in range(y.shape[1]):
        dx[n, k] = y[n, k] * (dy[n, k] - dot)


def sgd_element(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """(param, velocity) of one element after PyTorch's SGD step (dampening 0): v = momentum v + g;
    p -= lr (g + momentum v if nesterov else v). Without momentum the velocity is unchanged (the
    caller need not store it)."""
    g = grad + weight_decay * param
    if momentum != 0:
        velocity = momentum * velocity + g
        g = g + momentum * velocity if nesterov else velocity
    return param - lr * g, velocity


def adam_element(param, grad, m, v, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                 weight_decay, decay_factor, bias_correction2_sqrt):  # fmt: skip
    """(param, m, v) of one element after an Adam/AdamW step, its scalars from adam_scalars (in the
    array dtype: a literal 1 here would widen float32 arithmetic to float64)."""
    g = grad + weight_decay * param
    param = param * decay_factor
    m = beta1 * m + one_minus_beta1 * g
    v = beta2 * v + one_minus_beta2 * g * g
    return param - step_size * m / (math.sqrt(v) / bias_correction2_sqrt + eps), m, v


def adam_scalars(lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """The host-side scalars of adam_element for ``step`` (1-based): Adam folds the decay into the
    gradient (L2), AdamW (``decoupled``) shrinks the weights directly. Plain Python floats."""
    step_size = lr / (1.0 - beta1**step)
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
    l2 = 0.0 if decoupled else weight_decay
    decay_factor = 1.0 - lr * weight_decay if decoupled else 1.0
    return (step_size, beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps, l2, decay_factor, bias_correction2_sqrt)


def ema_element(average, value, decay, one_minus_decay):
    """One element of an exponential moving average: decay average + (1 - decay) value (the "1 -"
    precomputed in the array's dtype)."""
    return decay * average + one_minus_decay * value


def erased_value(seed, position, c, y, x, channels, height, width):
    """The random pixel value (float32 in [0, 255)) random erasing puts at (c, y, x) of the image at ``position``
    of its global batch: the dropout hash of that pixel's index, so every backend and every rank
    draws the same."""
    index = ((position * channels + c) * height + y) * width + x
    # 255 * bits / 2**24 in float32, rounded once: no float64 arithmetic in a float32 kernel.
    return np.float32(hash_bits(seed, index)) * np.float32(255.0 / 16777216.0)
