"""Per-channel ops on CUDA: channel concatenation, channel scaling (Dropout2d), Maxout, PReLU.

Twins of ``kernels/cpu/channels.py``: arrays viewed as (N, C, P), one thread per output element
gathering its inputs; PReLU's weight gradient is a block reduction per channel (fixed order).
"""

from numba import cuda, float64

from .launch import REDUCE_THREADS, launch_1d, require_device, view
from .reduce import block_sum


def _ncp(a):
    return view(a, a.shape[0], a.shape[1], a.size // (a.shape[0] * a.shape[1]))


@cuda.jit
def _copy_block(out, x, out_offset, x_offset, count):
    n_batch, _, p_len = out.shape
    for e in range(cuda.grid(1), n_batch * count * p_len, cuda.gridsize(1)):
        n, c, p = e // (count * p_len), (e // p_len) % count, e % p_len
        out[n, out_offset + c, p] = x[n, x_offset + c, p]


@cuda.jit
def _scale_channels(out, x, scale):
    n_batch, channels, p_len = x.shape
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        n, c, p = e // (channels * p_len), (e // p_len) % channels, e % p_len
        out[n, c, p] = x[n, c, p] * scale[n, c]


@cuda.jit
def _maxout_fwd(out, indices, x, pool):
    n_batch, groups, p_len = out.shape
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, g, p = e // (groups * p_len), (e // p_len) % groups, e % p_len
        best = x[n, g * pool, p]
        arg = 0
        for j in range(1, pool):
            v = x[n, g * pool + j, p]
            if v > best or (v != v and best == best):  # a NaN, once taken, stays
                best = v
                arg = j
        out[n, g, p] = best
        indices[n, g, p] = arg


@cuda.jit
def _maxout_bwd(dx, dy, indices, pool, zero):
    n_batch, channels, p_len = dx.shape
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        n, c, p = e // (channels * p_len), (e // p_len) % channels, e % p_len
        g, j = c // pool, c % pool
        dx[n, c, p] = dy[n, g, p] if indices[n, g, p] == j else zero


@cuda.jit
def _prelu_fwd(out, x, weight):
    n_batch, channels, p_len = x.shape
    shared = weight.shape[0] == 1
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        n, c, p = e // (channels * p_len), (e // p_len) % channels, e % p_len
        a = weight[0] if shared else weight[c]
        v = x[n, c, p]
        out[n, c, p] = v if v > 0 else a * v


@cuda.jit
def _prelu_input_grad(dx, dy, x, weight):
    n_batch, channels, p_len = x.shape
    shared = weight.shape[0] == 1
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        n, c, p = e // (channels * p_len), (e // p_len) % channels, e % p_len
        a = weight[0] if shared else weight[c]
        dx[n, c, p] = dy[n, c, p] if x[n, c, p] > 0 else a * dy[n, c, p]


@cuda.jit
def _prelu_weight_grad(dweight, dy, x):
    """One block per channel c: dweight[c or 0] += sum of dy * x where x <= 0. With a shared
    weight, channel blocks are summed in order by a single block looping over channels."""
    shared = dweight.shape[0] == 1
    n_batch, channels, p_len = x.shape
    shared_mem = cuda.shared.array(REDUCE_THREADS, float64)
    first, last = (0, channels) if shared else (cuda.blockIdx.x, cuda.blockIdx.x + 1)
    total = 0.0
    for c in range(first, last):
        acc = 0.0
        for e in range(cuda.threadIdx.x, n_batch * p_len, cuda.blockDim.x):
            v = x[e // p_len, c, e % p_len]
            if not v > 0:
                acc += dy[e // p_len, c, e % p_len] * v
        total += block_sum(shared_mem, acc)
    if cuda.threadIdx.x == 0:
        dweight[0 if shared else cuda.blockIdx.x] += total


def concat_channels_forward(out, x, offset):
    """out[:, offset:offset + C] = x (N, C, ...): one branch's output into the concatenation."""
    require_device("concat_channels_forward", out=out, x=x)
    launch_1d(_copy_block, x.size, _ncp(out), _ncp(x), int(offset), 0, x.shape[1])


def concat_channels_backward(dx, dy, offset):
    """dx (N, C, ...) = dy[:, offset:offset + C]: a branch's share of the concatenation's gradient."""
    require_device("concat_channels_backward", dx=dx, dy=dy)
    launch_1d(_copy_block, dx.size, _ncp(dx), _ncp(dy), 0, int(offset), dx.shape[1])


def scale_channels(out, x, scale):
    """out = x * scale[n, c] broadcast over each channel plane; x (N, C, ...), scale (N, C)."""
    require_device("scale_channels", out=out, x=x, scale=scale)
    launch_1d(_scale_channels, x.size, _ncp(out), _ncp(x), scale)


def maxout_forward(out, indices, x, pool_size):
    """out (N, C/k, ...) = max over each group of k = pool_size consecutive channels of x."""
    require_device("maxout_forward", out=out, indices=indices, x=x)
    launch_1d(_maxout_fwd, out.size, _ncp(out), _ncp(indices), _ncp(x), int(pool_size))


def maxout_backward(dx, dy, indices, pool_size):
    """dx (N, C, ...) = dy routed to each group's winner, 0 elsewhere."""
    require_device("maxout_backward", dx=dx, dy=dy, indices=indices)
    launch_1d(_maxout_bwd, dx.size, _ncp(dx), _ncp(dy), _ncp(indices), int(pool_size), dx.dtype.type(0))


def prelu_forward(out, x, weight):
    """out = x where x > 0, else weight * x; weight (1,) shared or (C,) per channel."""
    require_device("prelu_forward", out=out, x=x, weight=weight)
    launch_1d(_prelu_fwd, x.size, _ncp(out), _ncp(x), weight)


def prelu_backward(dx, dweight, dy, x, weight):
    """dx overwritten, dweight accumulated (sum of dy * x where x <= 0); each skipped if None."""
    require_device("prelu_backward", dx=dx, dweight=dweight, dy=dy, x=x, weight=weight)
    if dx is not None:
        launch_1d(_prelu_input_grad, x.size, _ncp(dx), _ncp(dy), _ncp(x), weight)
    if dweight is not None:
        _prelu_weight_grad[dweight.shape[0], REDUCE_THREADS](dweight, _ncp(dy), _ncp(x))
