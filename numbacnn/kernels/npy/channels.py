"""Per-channel ops in NumPy: channel concatenation, channel scaling, Maxout and PReLU.
Arrays are (N, C, H, W) or (N, C); weight (1,) shared or (C,); indices int32 like out."""

import numpy as np


def _ncp(a):
    return a.reshape(a.shape[0], a.shape[1], -1)


def concat_channels_forward(out, x, offset):
    """out[:, offset:offset + C] = x (N, C, ...): one branch's output into the concatenation."""
    out[:, offset : offset + x.shape[1]] = x


def concat_channels_backward(dx, dy, offset):
    """dx (N, C, ...) = dy[:, offset:offset + C]: a branch's share of the concatenation's gradient."""
    dx[...] = dy[:, offset : offset + dx.shape[1]]


def scale_channels(out, x, scale):
    """out = x * scale[n, c] broadcast over each channel plane; x (N, C, ...), scale (N, C)."""
    np.multiply(_ncp(x), scale[:, :, None], out=_ncp(out))


def maxout_forward(out, indices, x, pool_size):
    """out (N, C/k, ...) = max over each group of k = pool_size consecutive channels of x; indices
    = the winning channel within its group (the first maximum; a NaN wins and stays)."""
    xg = _ncp(x).reshape(x.shape[0], -1, pool_size, _ncp(x).shape[2])
    best = xg[:, :, 0].copy()
    arg = np.zeros(best.shape, np.int64)
    for j in range(1, pool_size):
        v = xg[:, :, j]
        take = (v > best) | ((v != v) & (best == best))
        best = np.where(take, v, best)
        arg = np.where(take, j, arg)
    _ncp(out)[...] = best
    _ncp(indices)[...] = arg


def maxout_backward(dx, dy, indices, pool_size):
    """dx (N, C, ...) = dy routed to each group's winner, 0 elsewhere."""
    dyp, winners = _ncp(dy), _ncp(indices)
    dxg = _ncp(dx).reshape(dx.shape[0], -1, pool_size, dyp.shape[2])
    for j in range(pool_size):
        dxg[:, :, j] = np.where(winners == j, dyp, dx.dtype.type(0))


def _weights(weight, channels):
    return (weight if weight.shape[0] > 1 else np.broadcast_to(weight, (channels,)))[None, :, None]


def prelu_forward(out, x, weight):
    """out = x where x > 0, else weight * x; weight (1,) shared or (C,) per channel."""
    xp = _ncp(x)
    _ncp(out)[...] = np.where(xp > 0, xp, _weights(weight, x.shape[1]) * xp)


def prelu_backward(dx, dweight, dy, x, weight):
    """dx overwritten, dweight accumulated (sum of dy * x where x <= 0); each skipped if None."""
    xp, dyp = _ncp(x), _ncp(dy)
    if dx is not None:
        _ncp(dx)[...] = np.where(xp > 0, dyp, _weights(weight, x.shape[1]) * dyp)
    if dweight is not None:
        per_channel = np.where(xp > 0, 0.0, dyp.astype(np.float64) * xp).sum(axis=(0, 2))
        dweight += (per_channel.sum(keepdims=True) if weight.shape[0] == 1 else per_channel).astype(dweight.dtype)
