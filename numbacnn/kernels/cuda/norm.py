"""BatchNorm2d on CUDA: block reductions per channel for the statistics, grid-stride elementwise
kernels for the normalisation and the input gradient (so a few channels still fill the GPU).

Shapes as in ``kernels/cpu/norm.py``: x, out, dx, dy (N, C, H, W); per-channel vectors (C,).
Statistics are summed in float64 (a channel holds N*H*W values), in a fixed order.
"""

import math

from numba import cuda, float64

from ..compose import batchnorm_add_relu, batchnorm_relu
from ..workspace import scratch
from .elementwise import add_relu_forward, relu_backward, relu_forward
from .launch import REDUCE_THREADS, device_empty, launch_1d, require_device, view
from .reduce import block_sum


@cuda.jit
def _batch_stats(save_mean, save_invstd, running_mean, running_var, x, eps, momentum):
    """One block per channel: batch mean and 1/std saved, running averages updated."""
    c = cuda.blockIdx.x
    n_batch, _, hw = x.shape
    count = n_batch * hw
    shared = cuda.shared.array(REDUCE_THREADS, float64)
    acc = 0.0
    for e in range(cuda.threadIdx.x, count, cuda.blockDim.x):
        acc += x[e // hw, c, e % hw]
    mean = block_sum(shared, acc) / count
    acc = 0.0
    for e in range(cuda.threadIdx.x, count, cuda.blockDim.x):
        d = x[e // hw, c, e % hw] - mean
        acc += d * d
    var = block_sum(shared, acc) / count
    if cuda.threadIdx.x == 0:
        save_mean[c] = mean
        save_invstd[c] = 1.0 / math.sqrt(var + eps)
        unbiased = var * count / (count - 1) if count > 1 else var
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * unbiased


@cuda.jit
def _running_stats(save_mean, save_invstd, running_mean, running_var, eps):
    for c in range(cuda.grid(1), save_mean.size, cuda.gridsize(1)):
        save_mean[c] = running_mean[c]
        save_invstd[c] = 1.0 / math.sqrt(running_var[c] + eps)


@cuda.jit
def _normalise(out, x, weight, bias, mean, invstd):
    """out = x * scale + shift per channel, scale = w/std, shift = b - mean*scale (as on the CPU)."""
    channels, hw = x.shape[1], x.shape[2]
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = (e // hw) % channels
        scale = weight[c] * invstd[c]
        shift = bias[c] - mean[c] * scale
        out[e // (hw * channels), c, e % hw] = x[e // (hw * channels), c, e % hw] * scale + shift


@cuda.jit
def _grad_sums(dweight, dbias, mean_dy, mean_dy_xhat, dy, x, save_mean, save_invstd):
    """One block per channel: dbias += sum dy, dweight += sum dy*xhat; their means saved for dx."""
    c = cuda.blockIdx.x
    n_batch, _, hw = x.shape
    count = n_batch * hw
    shared = cuda.shared.array(REDUCE_THREADS, float64)
    mean, invstd = save_mean[c], save_invstd[c]
    acc_dy = 0.0
    acc_dy_xhat = 0.0
    for e in range(cuda.threadIdx.x, count, cuda.blockDim.x):
        g = dy[e // hw, c, e % hw]
        acc_dy += g
        acc_dy_xhat += g * (x[e // hw, c, e % hw] - mean) * invstd
    sum_dy = block_sum(shared, acc_dy)
    sum_dy_xhat = block_sum(shared, acc_dy_xhat)
    if cuda.threadIdx.x == 0:
        dbias[c] += sum_dy
        dweight[c] += sum_dy_xhat
        mean_dy[c] = sum_dy / count
        mean_dy_xhat[c] = sum_dy_xhat / count


@cuda.jit
def _input_grad(dx, dy, x, weight, save_mean, save_invstd, mean_dy, mean_dy_xhat, training):
    channels, hw = x.shape[1], x.shape[2]
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        c = (e // hw) % channels
        n, q = e // (hw * channels), e % hw
        scale = weight[c] * save_invstd[c]
        if training:
            # dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
            xhat = (x[n, c, q] - save_mean[c]) * save_invstd[c]
            dx[n, c, q] = scale * (dy[n, c, q] - mean_dy[c] - xhat * mean_dy_xhat[c])
        else:
            # Eval mode normalises with constants: the statistics carry no gradient.
            dx[n, c, q] = scale * dy[n, c, q]


def _nchw3(a):
    return view(a, a.shape[0], a.shape[1], a.shape[2] * a.shape[3])


def batchnorm2d_forward_train(out, save_mean, save_invstd, running_mean, running_var, x, weight, bias, eps, momentum):
    """Normalise x with its batch statistics (saved for backward); update the running averages."""
    require_device(
        "batchnorm2d_forward_train",
        out=out,
        save_mean=save_mean,
        save_invstd=save_invstd,
        running_mean=running_mean,
        running_var=running_var,
        x=x,
        weight=weight,
        bias=bias,
    )
    x3 = _nchw3(x)
    _batch_stats[x.shape[1], REDUCE_THREADS](
        save_mean, save_invstd, running_mean, running_var, x3, float(eps), float(momentum)
    )
    launch_1d(_normalise, x.size, _nchw3(out), x3, weight, bias, save_mean, save_invstd)


def batchnorm2d_forward_eval(out, save_mean, save_invstd, x, weight, bias, running_mean, running_var, eps):
    """Normalise x with the running statistics, saved (as mean, 1/std) for backward."""
    require_device(
        "batchnorm2d_forward_eval",
        out=out,
        save_mean=save_mean,
        save_invstd=save_invstd,
        x=x,
        weight=weight,
        bias=bias,
        running_mean=running_mean,
        running_var=running_var,
    )
    launch_1d(_running_stats, x.shape[1], save_mean, save_invstd, running_mean, running_var, float(eps))
    launch_1d(_normalise, x.size, _nchw3(out), _nchw3(x), weight, bias, save_mean, save_invstd)


def batchnorm2d_backward(dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, training):
    """dx overwritten (None to skip); dweight, dbias accumulated.

    training=True: save_mean/save_invstd are the batch statistics of the forward pass.
    training=False: they are what batchnorm2d_forward_eval saved from the running statistics.
    """
    require_device(
        "batchnorm2d_backward",
        dx=dx,
        dweight=dweight,
        dbias=dbias,
        dy=dy,
        x=x,
        weight=weight,
        save_mean=save_mean,
        save_invstd=save_invstd,
    )
    channels = x.shape[1]
    means = scratch("cuda.bn.means", (2, channels), x.dtype, device_empty)
    x3, dy3 = _nchw3(x), _nchw3(dy)
    _grad_sums[channels, REDUCE_THREADS](dweight, dbias, means[0], means[1], dy3, x3, save_mean, save_invstd)
    if dx is not None:
        launch_1d(
            _input_grad, x.size, _nchw3(dx), dy3, x3, weight, save_mean, save_invstd, means[0], means[1], bool(training)
        )


@cuda.jit
def _moments(sums, a, b):
    """One block per channel: sums[0, c] = sum a, sums[1, c] = sum a * b."""
    c = cuda.blockIdx.x
    n_batch, _, hw = a.shape
    shared = cuda.shared.array(REDUCE_THREADS, float64)
    total = 0.0
    product = 0.0
    for e in range(cuda.threadIdx.x, n_batch * hw, cuda.blockDim.x):
        v = a[e // hw, c, e % hw]
        total += v
        product += v * b[e // hw, c, e % hw]
    total = block_sum(shared, total)
    product = block_sum(shared, product)
    if cuda.threadIdx.x == 0:
        sums[0, c] = total
        sums[1, c] = product


@cuda.jit
def _synced_grad_sums(dweight, dbias, mean_dy, mean_dy_xhat, save_mean, save_invstd, local_sums, global_sums, count):
    for c in range(cuda.grid(1), save_mean.size, cuda.gridsize(1)):
        mean, invstd = save_mean[c], save_invstd[c]
        dbias[c] += local_sums[0, c]
        dweight[c] += invstd * (local_sums[1, c] - mean * local_sums[0, c])
        mean_dy[c] = global_sums[0, c] / count
        mean_dy_xhat[c] = invstd * (global_sums[1, c] - mean * global_sums[0, c]) / count


def batchnorm2d_moments(sums, a, b):
    """sums (2, C) float64 <- per channel of a, b (N, C, H, W): [sum of a, sum of a * b]."""
    require_device("batchnorm2d_moments", sums=sums, a=a, b=b)
    _moments[a.shape[1], REDUCE_THREADS](sums, _nchw3(a), _nchw3(b))


def batchnorm2d_backward_synced(
    dx, dweight, dbias, dy, x, weight, save_mean, save_invstd, local_sums, global_sums, count
):
    """Backward of a BatchNorm whose statistics span several processes (see the CPU twin)."""
    require_device(
        "batchnorm2d_backward_synced",
        dx=dx,
        dweight=dweight,
        dbias=dbias,
        dy=dy,
        x=x,
        weight=weight,
        save_mean=save_mean,
        save_invstd=save_invstd,
        local_sums=local_sums,
        global_sums=global_sums,
    )
    channels = x.shape[1]
    means = scratch("cuda.bn.means", (2, channels), x.dtype, device_empty)
    launch_1d(
        _synced_grad_sums,
        channels,
        dweight,
        dbias,
        means[0],
        means[1],
        save_mean,
        save_invstd,
        local_sums,
        global_sums,
        float(count),
    )
    launch_1d(
        _input_grad, x.size, _nchw3(dx), _nchw3(dy), _nchw3(x), weight, save_mean, save_invstd, means[0], means[1], True
    )


# ReLU after BatchNorm (the pattern between a residual block's convolutions), fused on the CPU;
# here the two kernels run in turn.
batchnorm2d_relu_forward_train, batchnorm2d_relu_forward_eval, batchnorm2d_relu_backward = batchnorm_relu(
    batchnorm2d_forward_train,
    batchnorm2d_forward_eval,
    batchnorm2d_backward,
    relu_forward,
    relu_backward,
    lambda shape, dtype: scratch("cuda.bn.relu_dy", shape, dtype, device_empty),
)

# The residual join after a block's last BatchNorm (relu(bn(x) + shortcut)), fused on the CPU.
batchnorm2d_add_relu_forward_train, batchnorm2d_add_relu_forward_eval, batchnorm2d_add_relu_backward = (
    batchnorm_add_relu(
        batchnorm2d_forward_train, batchnorm2d_forward_eval, batchnorm2d_backward, add_relu_forward, relu_backward
    )
)
