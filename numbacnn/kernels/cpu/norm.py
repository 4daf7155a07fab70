"""BatchNorm2d on the CPU, in parallel over channels (each channel's statistics are disjoint).

Shapes: x, out, dx, dy (N, C, H, W); weight, bias, running_mean, running_var, save_mean,
save_invstd, dweight, dbias (C,). Statistics are accumulated in float64 on purpose: a channel
sums N*H*W values. Running variance uses the unbiased estimate, as PyTorch does.
"""

import math

from numba import njit, prange

# The statistics are long float64 sums. Without leave to reassociate, LLVM keeps each one a single
# serial chain of dependent adds; with it, the sums vectorise (benchmarks/NOTES.md, entry 9). The
# order is still fixed by the compiled code, so results stay deterministic run to run.
REDUCTIONS = {"reassoc"}


@njit(parallel=True, cache=True, fastmath=REDUCTIONS)
def _forward_train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum):
    n_batch, channels, height, width = x.shape
    count = n_batch * height * width
    for c in prange(channels):
        acc = 0.0
        for n in range(n_batch):
            for i in range(height):
                for j in range(width):
                    acc += x[n, c, i, j]
        mean = acc / count
        acc = 0.0
        for n in range(n_batch):
            for i in range(height):
                for j in range(width):
                    d = x[n, c, i, j] - mean
                    acc += d * d
        var = acc / count
        invstd = 1.0 / math.sqrt(var + eps)
        save_mean[c] = mean
        save_invstd[c] = invstd
        unbiased = var * count / (count - 1) if count > 1 else var
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * unbiased
        scale = weight[c] * invstd
        shift = bias[c] - mean * scale
        for n in range(n_batch):
            for i in range(height):
                for j in range(width):
                    out[n, c, i, j] = x[n, c, i, j] * scale + shift


@njit(parallel=True, cache=True)
def _forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps):
    n_batch, channels, height, width = x.shape
    for c in prange(channels):
        invstd = 1.0 / math.sqrt(running_var[c] + eps)
        save_mean[c] = running_mean[c]
        save_invstd[c] = invstd
        scale = weight[c] * invstd
        shift = bias[c] - running_mean[c] * scale
        for n in range(n_batch):
            for i in range(height):
                for j in range(width):
                    out[n, c, i, j] = x[n, c, i, j] * scale + shift


@njit(parallel=True, cache=True, fastmath=REDUCTIONS)
def _backward(dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, training):
    n_batch, channels, height, width = x.shape
    count = n_batch * height * width
    for c in prange(channels):
        mean = save_mean[c]
        invstd = save_invstd[c]
        sum_dy = 0.0
        sum_dy_xhat = 0.0
        for n in range(n_batch):
            for i in range(height):
                for j in range(width):
                    g = dy[n, c, i, j]
                    sum_dy += g
                    sum_dy_xhat += g * (x[n, c, i, j] - mean) * invstd
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
                for i in range(height):
                    for j in range(width):
                        xhat = (x[n, c, i, j] - mean) * invstd
                        dx[n, c, i, j] = scale * (dy[n, c, i, j] - mean_dy - xhat * mean_dy_xhat)
        else:
            # Eval mode normalises with constants: the statistics carry no gradient.
            for n in range(n_batch):
                for i in range(height):
                    for j in range(width):
                        dx[n, c, i, j] = scale * dy[n, c, i, j]


def batchnorm2d_forward_train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum):
    """Normalise x with its batch statistics (saved for backward); update the running averages."""
    _forward_train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, float(eps), float(momentum))


def batchnorm2d_forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps):
    """Normalise x with the running statistics, saved (as mean, 1/std) for backward."""
    _forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, float(eps))


def batchnorm2d_backward(dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, training):
    """dx overwritten (None to skip); dweight, dbias accumulated.

    training=True: save_mean/save_invstd are the batch statistics of the forward pass.
    training=False: they are what batchnorm2d_forward_eval saved from the running statistics.
    """
    if dx is None:
        dx = x[:0]
    _backward(dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, bool(training))


@njit(parallel=True, cache=True, fastmath=REDUCTIONS)
def _moments(sums, a, b):
    n_batch, channels, height, width = a.shape
    for c in prange(channels):
        total = 0.0
        product = 0.0
        for n in range(n_batch):
            for i in range(height):
                for j in range(width):
                    v = a[n, c, i, j]
                    total += v
                    product += v * b[n, c, i, j]
        sums[0, c] = total
        sums[1, c] = product


@njit(parallel=True, cache=True)
def _backward_synced(dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, local_sums, global_sums, count):
    n_batch, channels, height, width = x.shape
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
            for i in range(height):
                for j in range(width):
                    xhat = (x[n, c, i, j] - mean) * invstd
                    dx[n, c, i, j] = scale * (dy[n, c, i, j] - mean_dy - xhat * mean_dy_xhat)


def batchnorm2d_moments(sums, a, b):
    """sums (2, C) float64 <- per channel of a, b (N, C, H, W): [sum of a, sum of a * b].

    What a synchronised BatchNorm all-reduces: a = b = x in forward (sum x, sum x^2), a = dy and
    b = x in backward (sum dy, sum dy * x).
    """
    _moments(sums, a, b)


def batchnorm2d_backward_synced(
    dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, local_sums, global_sums, count
):
    """Backward of a BatchNorm whose statistics span several processes: dx overwritten; dweight,
    dbias accumulated from this process's ``local_sums``; ``global_sums`` (2, C) float64 are the
    batchnorm2d_moments(dy, x) summed over all processes, whose images number ``count`` per channel
    (N*H*W summed)."""
    _backward_synced(dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, local_sums, global_sums, float(count))
