"""BatchNorm2d in NumPy, statistics in float64 as the compiled kernels keep them.

Shapes: x, out, dx, dy (N, C, H, W); weight, bias, running_mean, running_var, save_mean,
save_invstd, dweight, dbias (C,); sums (2, C) float64.
"""

import numpy as np

from ..compose import batchnorm_add_relu, batchnorm_relu
from ..workspace import scratch
from .elementwise import add_relu_forward, relu_backward, relu_forward

AXES = (0, 2, 3)


def _per_channel(v):
    return np.asarray(v, np.float64).reshape(1, -1, 1, 1)


def _centred(x, mean):
    """x - mean in float64, in the 'npy.bn' workspace (no fresh array of x's size per call)."""
    return np.subtract(x, _per_channel(mean), out=scratch("npy.bn", x.shape, np.float64))


def _affine(out, x, scale, shift):
    """out = x * scale + shift per channel; the float64 constants rounded to x's dtype first
    (no float64 temporary of x's size)."""
    np.multiply(x, _per_channel(scale).astype(x.dtype), out=out)
    out += _per_channel(shift).astype(x.dtype)


def _normalise(out, x, weight, bias, mean, invstd):
    scale = weight.astype(np.float64) * invstd
    _affine(out, x, scale, bias.astype(np.float64) - mean * scale)


def batchnorm2d_forward_train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum):
    """Normalise x with its batch statistics (saved for backward); update the running averages."""
    count = x.size // x.shape[1]
    mean = x.sum(axis=AXES, dtype=np.float64) / count
    centred = _centred(x, mean)
    var = np.multiply(centred, centred, out=centred).sum(axis=AXES) / count
    invstd = 1.0 / np.sqrt(var + eps)
    save_mean[...] = mean
    save_invstd[...] = invstd
    unbiased = var * count / (count - 1) if count > 1 else var
    running_mean[...] = (1.0 - momentum) * running_mean + momentum * mean
    running_var[...] = (1.0 - momentum) * running_var + momentum * unbiased
    _normalise(out, x, weight, bias, mean, invstd)


def batchnorm2d_forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps):
    """Normalise x with the running statistics, saved (as mean, 1/std) for backward."""
    invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    save_mean[...] = running_mean
    save_invstd[...] = invstd
    _normalise(out, x, weight, bias, running_mean.astype(np.float64), invstd)


def _dx(dx, dy, x, weight, mean, invstd, mean_dy, mean_dy_xhat):
    """dx = w invstd (dy - mean_dy - xhat mean_dy_xhat), xhat = (x - mean) invstd, written as
    a dy + b x + c per channel."""
    a = weight.astype(np.float64) * invstd
    b = -a * invstd * mean_dy_xhat
    c = a * (invstd * mean_dy_xhat * mean - mean_dy)
    _affine(dx, x, b, c)
    dx += dy * _per_channel(a).astype(dx.dtype)


def batchnorm2d_backward(dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, training):
    """dx overwritten (None to skip); dweight, dbias accumulated."""
    count = x.size // x.shape[1]
    mean, invstd = save_mean.astype(np.float64), save_invstd.astype(np.float64)
    sum_dy = dy.sum(axis=AXES, dtype=np.float64)
    centred = _centred(x, mean)
    sum_dy_xhat = np.multiply(centred, dy, out=centred).sum(axis=AXES) * invstd
    dbias += sum_dy.astype(dbias.dtype)
    dweight += sum_dy_xhat.astype(dweight.dtype)
    if dx is None:
        return
    if training:
        _dx(dx, dy, x, weight, mean, invstd, sum_dy / count, sum_dy_xhat / count)
    else:  # eval mode normalises with constants: the statistics carry no gradient
        np.multiply(dy, _per_channel(weight * invstd).astype(dx.dtype), out=dx)


def batchnorm2d_moments(sums, a, b):
    """sums (2, C) float64 <- per channel of a, b (N, C, H, W): [sum of a, sum of a * b]."""
    sums[0] = a.sum(axis=AXES, dtype=np.float64)
    sums[1] = (a.astype(np.float64) * b).sum(axis=AXES)


def batchnorm2d_backward_synced(
    dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, local_sums, global_sums, count
):
    """Backward of a BatchNorm whose statistics span several processes (see kernels.cpu)."""
    mean, invstd = save_mean.astype(np.float64), save_invstd.astype(np.float64)
    dbias += local_sums[0].astype(dbias.dtype)
    dweight += (invstd * (local_sums[1] - mean * local_sums[0])).astype(dweight.dtype)
    mean_dy = global_sums[0] / count
    mean_dy_xhat = invstd * (global_sums[1] - mean * global_sums[0]) / count
    _dx(dx, dy, x, weight, mean, invstd, mean_dy, mean_dy_xhat)


# ReLU after BatchNorm (the pattern between a residual block's convolutions), fused on the CPU;
# here the two kernels run in turn.
batchnorm2d_relu_forward_train, batchnorm2d_relu_forward_eval, batchnorm2d_relu_backward = batchnorm_relu(
    batchnorm2d_forward_train,
    batchnorm2d_forward_eval,
    batchnorm2d_backward,
    relu_forward,
    relu_backward,
    lambda shape, dtype: scratch("npy.bn.relu_dy", shape, dtype),
)

# The residual join after a block's last BatchNorm (relu(bn(x) + shortcut)), fused on the CPU.
batchnorm2d_add_relu_forward_train, batchnorm2d_add_relu_forward_eval, batchnorm2d_add_relu_backward = (
    batchnorm_add_relu(
        batchnorm2d_forward_train, batchnorm2d_forward_eval, batchnorm2d_backward, add_relu_forward, relu_backward
    )
)
