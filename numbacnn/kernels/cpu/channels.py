"""Per-channel ops on the CPU: channel concatenation (Inception branches), channel scaling
(Dropout2d), Maxout and PReLU.

Arrays are (N, C, H, W) or (N, C); each kernel views them as (N, C, P) with P = H*W (1 for 2-D).
Work is split over samples (prange over n): the writes of different samples are disjoint.
"""

from numba import njit, prange


def _ncp(a):
    return a.reshape(a.shape[0], a.shape[1], -1)


@njit(parallel=True, cache=True)
def _copy_block(out, x, out_offset, x_offset, count):
    """out[:, out_offset + c] = x[:, x_offset + c] for c < count."""
    for n in prange(out.shape[0]):
        for c in range(count):
            out[n, out_offset + c, :] = x[n, x_offset + c, :]


@njit(parallel=True, cache=True)
def _scale_channels(out, x, scale):
    for n in prange(x.shape[0]):
        for c in range(x.shape[1]):
            s = scale[n, c]
            for p in range(x.shape[2]):
                out[n, c, p] = x[n, c, p] * s


@njit(parallel=True, cache=True)
def _maxout_fwd(out, indices, x, pool):
    for n in prange(x.shape[0]):
        for g in range(out.shape[1]):
            for p in range(x.shape[2]):
                best = x[n, g * pool, p]
                arg = 0
                for j in range(1, pool):
                    v = x[n, g * pool + j, p]
                    # A NaN, once taken, stays (as max pooling and PyTorch's max do).
                    if v > best or (v != v and best == best):
                        best = v
                        arg = j
                out[n, g, p] = best
                indices[n, g, p] = arg


@njit(parallel=True, cache=True)
def _maxout_bwd(dx, dy, indices, pool):
    for n in prange(dx.shape[0]):
        for g in range(dy.shape[1]):
            for p in range(dy.shape[2]):
                winner = indices[n, g, p]
                for j in range(pool):
                    dx[n, g * pool + j, p] = dy[n, g, p] if j == winner else 0


@njit(parallel=True, cache=True)
def _prelu_fwd(out, x, weight):
    shared = weight.shape[0] == 1
    for n in prange(x.shape[0]):
        for c in range(x.shape[1]):
            a = weight[0] if shared else weight[c]
            for p in range(x.shape[2]):
                v = x[n, c, p]
                out[n, c, p] = v if v > 0 else a * v


@njit(cache=True)
def _prelu_bwd(dx, dweight, dy, x, weight, has_dx, has_dweight):
    # Serial over n: dweight sums over the batch in a fixed order (the gradient is thread-count
    # independent); PReLU's arrays are small next to the convolutions around it.
    shared = weight.shape[0] == 1
    for c in range(x.shape[1]):
        a = weight[0] if shared else weight[c]
        acc = 0.0
        for n in range(x.shape[0]):
            for p in range(x.shape[2]):
                v = x[n, c, p]
                g = dy[n, c, p]
                if v > 0:
                    if has_dx:
                        dx[n, c, p] = g
                else:
                    if has_dx:
                        dx[n, c, p] = a * g
                    acc += g * v
        if has_dweight:
            dweight[0 if shared else c] += acc


def concat_channels_forward(out, x, offset):
    """out[:, offset:offset + C] = x (N, C, ...): one branch's output into the concatenation."""
    _copy_block(_ncp(out), _ncp(x), int(offset), 0, x.shape[1])


def concat_channels_backward(dx, dy, offset):
    """dx (N, C, ...) = dy[:, offset:offset + C]: a branch's share of the concatenation's gradient."""
    _copy_block(_ncp(dx), _ncp(dy), 0, int(offset), dx.shape[1])


def scale_channels(out, x, scale):
    """out = x * scale[n, c] broadcast over each channel plane; x (N, C, ...), scale (N, C)."""
    _scale_channels(_ncp(out), _ncp(x), scale)


def maxout_forward(out, indices, x, pool_size):
    """out (N, C/k, ...) = max over each group of k = pool_size consecutive channels of x (N, C, ...);
    indices (int32, out's shape) = the winning channel within its group."""
    _maxout_fwd(_ncp(out), _ncp(indices), _ncp(x), int(pool_size))


def maxout_backward(dx, dy, indices, pool_size):
    """dx (N, C, ...) = dy routed to each group's winner, 0 elsewhere."""
    _maxout_bwd(_ncp(dx), _ncp(dy), _ncp(indices), int(pool_size))


def prelu_forward(out, x, weight):
    """out = x where x > 0, else weight * x; weight (1,) shared or (C,) per channel."""
    _prelu_fwd(_ncp(out), _ncp(x), weight)


def prelu_backward(dx, dweight, dy, x, weight):
    """dx overwritten, dweight accumulated (sum of dy * x where x <= 0); each skipped if None."""
    has_dx, has_dweight = dx is not None, dweight is not None
    _prelu_bwd(
        _ncp(dx) if has_dx else _ncp(x),
        dweight if has_dweight else weight,  # not written when has_dweight is False
        _ncp(dy),
        _ncp(x),
        weight,
        has_dx,
        has_dweight,
    )
