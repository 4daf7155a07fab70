"""BatchNorm2d on the CPU, in parallel over channels (each channel's statistics are disjoint).

Shapes: x, out, dx, dy (N, C, H, W); weight, bias, running_mean, running_var, save_mean,
save_invstd, dweight, dbias (C,). The compiled loops see each plane as one run of H*W values
(``_planes``): one long loop vectorises where short rows (7 or 14 values) do not. Statistics
are accumulated in float64 on purpose: a channel sums N*H*W values. Running variance uses the
unbiased estimate, as PyTorch does.
"""

import math

import numpy as np
from numba import njit, prange

from .elementwise import relu_backward

# The statistics are long float64 sums. Without leave to reassociate, LLVM keeps each one a single
# serial chain of dependent adds; with it, the sums vectorise (benchmarks/NOTES.md, entry 9). The
# order is still fixed by the compiled code, so results stay deterministic run to run.
REDUCTIONS = {"reassoc"}


@njit(parallel=True, cache=True, fastmath=REDUCTIONS)
def _forward_train(
    out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum, relu, residual
):
    n_batch, channels, positions = x.shape
    count = n_batch * positions
    for c in prange(channels):
        # One pass gathers both sums, of x less one of its own values: with that shift the
        # variance (mean of squares less the squared mean) cancels no digits even where the
        # mean is far larger than the spread (benchmarks/NOTES.md, entry 57).
        pivot = x[0, c, 0]
        total = 0.0
        squares = 0.0
        for n in range(n_batch):
            for q in range(positions):
                d = np.float64(x[n, c, q] - pivot)
                total += d
                squares += d * d
        shifted_mean = total / count
        mean = pivot + shifted_mean
        var = max(squares / count - shifted_mean * shifted_mean, 0.0)
        invstd = 1.0 / math.sqrt(var + eps)
        save_mean[c] = mean
        save_invstd[c] = invstd
        unbiased = var * count / (count - 1) if count > 1 else var
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * unbiased
        scale = weight[c] * invstd
        _normalise(out, x, residual, c, scale, bias[c] - mean * scale, relu)


@njit(parallel=True, cache=True)
def _forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps, relu, residual):
    channels = x.shape[1]
    for c in prange(channels):
        invstd = 1.0 / math.sqrt(running_var[c] + eps)
        save_mean[c] = running_mean[c]
        save_invstd[c] = invstd
        scale = weight[c] * invstd
        _normalise(out, x, residual, c, scale, bias[c] - running_mean[c] * scale, relu)


@njit(inline="always")
def _normalise(out, x, residual, c, scale, shift, relu):
    """out[:, c] = x[:, c] * scale + shift, plus residual[:, c] unless residual is empty, then the
    ReLU if ``relu``. Two loops, so that each is one plain vector loop."""
    n_batch, positions = x.shape[0], x.shape[2]
    if residual.shape[0] > 0:
        for n in range(n_batch):
            for q in range(positions):
                v = x[n, c, q] * scale + shift + residual[n, c, q]
                out[n, c, q] = 0 if relu and v <= 0 else v
    else:
        for n in range(n_batch):
            for q in range(positions):
                v = x[n, c, q] * scale + shift
                out[n, c, q] = 0 if relu and v <= 0 else v  # a NaN stays a NaN, as in ReLU


@njit(parallel=True, cache=True, fastmath=REDUCTIONS)
def _backward(dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, training, mask, relu):
    """With ``relu``, dy is the gradient of relu(batchnorm(x)) = ``mask``: it passes where mask > 0."""
    n_batch, channels, positions = x.shape
    count = n_batch * positions
    for c in prange(channels):
        mean = save_mean[c]
        invstd = save_invstd[c]
        sum_dy = 0.0
        sum_dy_xhat = 0.0
        for n in range(n_batch):
            for q in range(positions):
                g = 0 if relu and mask[n, c, q] <= 0 else dy[n, c, q]
                sum_dy += g
                sum_dy_xhat += g * (x[n, c, q] - mean) * invstd
        dbias[c] += sum_dy
        dweight[c] += sum_dy_xhat
        if dx.size == 0:
            continue
        scale = weight[c] * invstd
        if training:
            # dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
            mean_dy = sum_dy / count
            mean_dy_xhat = sum_dy_xhat / count
            for n in range(n_batch):
                for q in range(positions):
                    xhat = (x[n, c, q] - mean) * invstd
                    g = 0 if relu and mask[n, c, q] <= 0 else dy[n, c, q]
                    dx[n, c, q] = scale * (g - mean_dy - xhat * mean_dy_xhat)
        else:
            # Eval mode normalises with constants: the statistics carry no gradient.
            for n in range(n_batch):
                for q in range(positions):
                    dx[n, c, q] = 0 if relu and mask[n, c, q] <= 0 else scale * dy[n, c, q]


def _planes(a):
    """a (N, C, H, W) as the view (N, C, H*W); any other array (an empty dx) as it is."""
    return a.reshape(a.shape[0], a.shape[1], -1) if a.ndim == 4 else a


def _train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum, relu, residual=None):
    x = _planes(x)
    residual = x[:0] if residual is None else _planes(residual)
    _forward_train(
        _planes(out), save_mean, save_invstd, running_mean, running_var, x, weight, bias, float(eps),
        float(momentum), relu, residual,
    )  # fmt: skip


def _eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps, relu, residual=None):
    x = _planes(x)
    residual = x[:0] if residual is None else _planes(residual)
    _forward_eval(
        _planes(out), save_mean, save_invstd, x, weight, bias, running_mean, running_var, float(eps), relu, residual
    )


def _gradients(dx, dweight, dbias, dy, relu_out, x, weight, save_mean, save_invstd, training):
    """The backward pass; with ``relu_out`` (the fused forward's output) dy passes where it is > 0."""
    dx = _planes(x)[:0] if dx is None else _planes(dx)
    mask = _planes(dy if relu_out is None else relu_out)
    _backward(dx, dweight, dbias, _planes(dy), _planes(x), weight, save_mean, save_invstd, bool(training), mask,
              relu_out is not None)  # fmt: skip


def batchnorm2d_forward_train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum):
    """Normalise x with its batch statistics (saved for backward); update the running averages."""
    _train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum, False)


def batchnorm2d_forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps):
    """Normalise x with the running statistics, saved (as mean, 1/std) for backward."""
    _eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps, False)


def batchnorm2d_backward(dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, training):
    """dx overwritten (None to skip); dweight, dbias accumulated.

    training=True: save_mean/save_invstd are the batch statistics of the forward pass.
    training=False: they are what batchnorm2d_forward_eval saved from the running statistics.
    """
    _gradients(dx, dweight, dbias, dy, None, x, weight, save_mean, save_invstd, training)


def batchnorm2d_relu_forward_train(
    out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum
):
    """out = relu(batchnorm2d_forward_train(x)) in the same pass: the normalised values are never
    stored before the ReLU (the pattern between the convolutions of a residual block)."""
    _train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum, True)


def batchnorm2d_relu_forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps):
    """out = relu(batchnorm2d_forward_eval(x)) in the same pass."""
    _eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps, True)


def batchnorm2d_relu_backward(dx, dweight, dbias, dy, out, x, weight, save_mean, save_invstd, training):
    """The gradients of batchnorm2d_relu_forward_*: dy (N, C, H, W) is the gradient of its output
    ``out``, passed where out > 0 (as relu_backward) inside the BatchNorm backward's own passes.
    dx overwritten (None to skip); dweight, dbias accumulated."""
    _gradients(dx, dweight, dbias, dy, out, x, weight, save_mean, save_invstd, training)


def batchnorm2d_add_relu_forward_train(
    out, save_mean, save_invstd, running_mean, running_var, x, residual, weight, bias, eps, momentum
):
    """out = relu(batchnorm2d_forward_train(x) + residual) in the normalising pass: the residual
    join after a block's last BatchNorm, whose normalised values are never stored. residual has
    x's shape (N, C, H, W)."""
    _train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum, True, residual)


def batchnorm2d_add_relu_forward_eval(
    out, save_mean, save_invstd, x, residual, weight, bias, running_mean, running_var, eps
):
    """out = relu(batchnorm2d_forward_eval(x) + residual) in the same pass."""
    _eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps, True, residual)


def batchnorm2d_add_relu_backward(dx, dresidual, dweight, dbias, dy, out, x, weight, save_mean, save_invstd, training):
    """The gradients of batchnorm2d_add_relu_forward_*: dy (N, C, H, W) is the gradient of its
    output ``out``. dresidual = dy where out > 0 (the gradient of both summands); dx, the
    BatchNorm's input gradient of that, overwritten (None to skip); dweight, dbias accumulated.
    Two passes as relu_backward and batchnorm2d_backward: writing dresidual inside the
    BatchNorm's pass over channel planes measured slower than one flat pass first
    (benchmarks/NOTES.md, entry 63)."""
    relu_backward(dresidual, dy, out)
    _gradients(dx, dweight, dbias, dresidual, None, x, weight, save_mean, save_invstd, training)


@njit(parallel=True, cache=True, fastmath=REDUCTIONS)
def _moments(sums, a, b):
    n_batch, channels, positions = a.shape
    for c in prange(channels):
        total = 0.0
        product = 0.0
        for n in range(n_batch):
            for q in range(positions):
                v = a[n, c, q]
                total += v
                product += v * b[n, c, q]
        sums[0, c] = total
        sums[1, c] = product


@njit(parallel=True, cache=True)
def _backward_synced(dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, local_sums, global_sums, count):
    n_batch, channels, positions = x.shape
    for c in prange(channels):
        mean = save_mean[c]
        invstd = save_invstd[c]
        # sum dy * xhat = invstd * (sum dy * x - mean * sum dy)
        dbias[c] += local_sums[0, c]
        dweight[c] += invstd * (local_sums[1, c] - mean * local_sums[0, c])
        mean_dy = global_sums[0, c] / count
        mean_dy_xhat = invstd * (global_sums[1, c] - mean * global_sums[0, c]) / count
        scale = weight[c] * invstd
        for n in range(n_batch):
            for q in range(positions):
                xhat = (x[n, c, q] - mean) * invstd
                dx[n, c, q] = scale * (dy[n, c, q] - mean_dy - xhat * mean_dy_xhat)


def batchnorm2d_moments(sums, a, b):
    """sums (2, C) float64 <- per channel of a, b (N, C, H, W): [sum of a, sum of a * b].

    What a synchronised BatchNorm all-reduces: a = b = x in forward (sum x, sum x^2), a = dy and
    b = x in backward (sum dy, sum dy * x).
    """
    _moments(sums, _planes(a), _planes(b))


def batchnorm2d_backward_synced(
    dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, local_sums, global_sums, count
):
    """Backward of a BatchNorm whose statistics span several processes: dx overwritten; dweight,
    dbias accumulated from this process's ``local_sums``; ``global_sums`` (2, C) float64 are the
    batchnorm2d_moments(dy, x) summed over all processes, whose images number ``count`` per channel
    (N*H*W summed)."""
    _backward_synced(
        _planes(dx), dweight, dbias, _planes(dy), _planes(x), weight, save_mean, save_invstd, local_sums, global_sums,
        float(count),
    )  # fmt: skip
