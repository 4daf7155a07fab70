"""Pooling in NumPy: one strided slice of a padded copy per window tap.

Shapes: x, dx (N, C, H, W); out, dy, indices (N, C, OH, OW); OH, OW come from out (ceil_mode's
extra window included). indices hold each window's argmax as iy * W + ix within its plane, as the
compiled kernels do, so a forward pass of one backend and a backward pass of another agree.
"""

import numpy as np

from ..shared_math import pool_divisor
from ..workspace import scratch


def _padded(x, fill, kernel, stride, padding, oh, ow, extra_rows=0):
    """x inside a border of ``fill`` wide enough for every window (ceil_mode's may run past the
    padding), in the 'npy.pool' workspace; ``extra_rows`` more rows of ``fill`` below."""
    n, c, h, w = x.shape
    hp = max(h + 2 * padding[0], (oh - 1) * stride[0] + kernel[0]) + extra_rows
    wp = max(w + 2 * padding[1], (ow - 1) * stride[1] + kernel[1])
    xp = scratch("npy.pool", (n, c, hp, wp), x.dtype)
    xp[...] = fill
    xp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + w] = x
    return xp


def _window(i, j, stride, oh, ow):
    return slice(i, i + stride[0] * (oh - 1) + 1, stride[0]), slice(j, j + stride[1] * (ow - 1) + 1, stride[1])


def maxpool2d_forward(out, indices, x, kernel, stride, padding):
    """out, indices (N, C, OH, OW) <- window maxima of x (N, C, H, W); padding never wins."""
    n, c, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    kh, kw = kernel
    wide = tuple(stride) == (1, 1)
    xp = _padded(x, -np.inf, kernel, stride, padding, oh, ow, extra_rows=int(wide))
    if wide:
        # Stride 1: each tap is one contiguous run per plane over whole padded rows (OH x Wp,
        # the columns past OW wasted), so NumPy's loops run long instead of OW at a time.
        wp = xp.shape[3]
        flat, span = xp.reshape(n, c, -1), oh * wp
        best = scratch("npy.best", (n, c, span), x.dtype)

        def tap_values(i, j):
            return flat[:, :, i * wp + j : i * wp + j + span]
    else:
        best = out

        def tap_values(i, j):
            return xp[(slice(None), slice(None)) + _window(i, j, stride, oh, ow)]

    tap = scratch("npy.tap", best.shape, np.uint8)
    take = scratch("npy.mask", best.shape, np.bool_)
    best[...] = tap_values(0, 0)
    tap[...] = 0
    if np.isnan(x).any():  # a NaN wins, and a NaN once taken stays: tap by tap
        for t in range(1, kh * kw):
            v = tap_values(t // kw, t % kw)
            np.greater(v, best, out=take)  # strictly: ties keep the first tap in scan order
            take |= np.isnan(v) & ~np.isnan(best)
            np.copyto(best, v, where=take)
            np.copyto(tap, t, where=take)
    else:  # the maxima first, then each window's first tap that equals its maximum
        for t in range(1, kh * kw):
            np.maximum(best, tap_values(t // kw, t % kw), out=best)
        found = scratch("npy.found", best.shape, np.bool_)
        np.equal(tap_values(0, 0), best, out=found)
        for t in range(1, kh * kw):
            np.equal(tap_values(t // kw, t % kw), best, out=take)
            take &= ~found
            found |= take
            tap += take.view(np.uint8) * np.uint8(t)
    if wide:
        out[...] = best.reshape(n, c, oh, wp)[..., :ow]
        tap = tap.reshape(n, c, oh, wp)[..., :ow]
    iy = np.arange(oh)[:, None] * stride[0] - padding[0] + tap // kw
    ix = np.arange(ow)[None, :] * stride[1] - padding[1] + tap % kw
    # A window whose real pixels are all -inf keeps its first tap, which may lie in the padding:
    # the compiled kernels name the window's first real pixel then.
    outside = (iy < 0) | (iy >= h) | (ix < 0) | (ix >= w)
    if outside.any():
        iy = np.where(outside, np.maximum(np.arange(oh) * stride[0] - padding[0], 0)[:, None], iy)
        ix = np.where(outside, np.maximum(np.arange(ow) * stride[1] - padding[1], 0)[None, :], ix)
    np.copyto(indices, iy * w + ix, casting="unsafe")


def maxpool2d_backward(dx, dy, indices, kernel, stride, padding):
    """dx (N, C, H, W) = dy (N, C, OH, OW) routed to each window's argmax (summed on overlap)."""
    n, c, h, w = dx.shape
    planes = np.arange(n * c).reshape(n, c, 1, 1) * (h * w)
    sums = np.bincount((planes + indices).ravel(), weights=dy.ravel(), minlength=n * c * h * w)
    dx[...] = sums.reshape(dx.shape)


def _divisors(out_shape, x_shape, kernel, stride, padding, include_pad):
    oh, ow = out_shape[2], out_shape[3]
    h, w = x_shape[2], x_shape[3]
    return np.array(
        [[pool_divisor(oy, ox, *kernel, *stride, *padding, h, w, include_pad) for ox in range(ow)] for oy in range(oh)],
        np.float64,
    )


def avgpool2d_forward(out, x, kernel, stride, padding, count_include_pad=True):
    """out (N, C, OH, OW) = window means of x (N, C, H, W) (divisor as PyTorch's)."""
    oh, ow = out.shape[2], out.shape[3]
    xp = _padded(x, 0, kernel, stride, padding, oh, ow)
    acc = np.zeros(out.shape, np.float64)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            acc += xp[(slice(None), slice(None)) + _window(i, j, stride, oh, ow)]
    out[...] = acc / _divisors(out.shape, x.shape, kernel, stride, padding, bool(count_include_pad))


def avgpool2d_backward(dx, dy, kernel, stride, padding, count_include_pad=True):
    """dx (N, C, H, W) = dy (N, C, OH, OW) spread evenly over each window."""
    n, c, h, w = dx.shape
    oh, ow = dy.shape[2], dy.shape[3]
    g = dy / _divisors(dy.shape, dx.shape, kernel, stride, padding, bool(count_include_pad))
    dxp = _padded(np.zeros(dx.shape, np.float64), 0, kernel, stride, padding, oh, ow)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            dxp[(slice(None), slice(None)) + _window(i, j, stride, oh, ow)] += g
    dx[...] = dxp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + w]


def global_avgpool2d_forward(out, x):
    """out (N, C, 1, 1) = mean of x (N, C, H, W) over H and W."""
    out[...] = x.sum(axis=(2, 3), keepdims=True, dtype=np.float64) * (1.0 / (x.shape[2] * x.shape[3]))


def global_avgpool2d_backward(dx, dy):
    """dx (N, C, H, W) = dy (N, C, 1, 1) / (H * W) everywhere."""
    dx[...] = dy * (1.0 / (dx.shape[2] * dx.shape[3]))


def _bins(size, count):
    """PyTorch's adaptive bins: [floor(i size / count), ceil((i + 1) size / count))."""
    return [((i * size) // count, -((-(i + 1) * size) // count)) for i in range(count)]


def adaptive_avgpool2d_forward(out, x):
    """out (N, C, OH, OW) = means of x (N, C, H, W) over PyTorch's adaptive bins."""
    for oy, (y0, y1) in enumerate(_bins(x.shape[2], out.shape[2])):
        for ox, (x0, x1) in enumerate(_bins(x.shape[3], out.shape[3])):
            out[:, :, oy, ox] = x[:, :, y0:y1, x0:x1].sum(axis=(2, 3), dtype=np.float64) / ((y1 - y0) * (x1 - x0))


def adaptive_avgpool2d_backward(dx, dy):
    """dx (N, C, H, W) = dy (N, C, OH, OW) spread evenly over each bin (summed where bins overlap)."""
    acc = np.zeros(dx.shape, np.float64)
    for oy, (y0, y1) in enumerate(_bins(dx.shape[2], dy.shape[2])):
        for ox, (x0, x1) in enumerate(_bins(dx.shape[3], dy.shape[3])):
            acc[:, :, y0:y1, x0:x1] += (dy[:, :, oy, ox] / ((y1 - y0) * (x1 - x0)))[:, :, None, None]
    dx[...] = acc
