"""Pooling in NumPy: one strided slice of a padded copy per window tap.

Shapes: x, dx (N, C, H, W); out, dy, indices (N, C, OH, OW); OH, OW come from out (ceil_mode's
extra window included). indices hold each window's argmax as iy * W + ix within its plane, as the
compiled kernels do, so a forward pass of one backend and a backward pass of another agree.
"""

import numpy as np

from ..shared_math import pool_divisor


def _padded(x, fill, kernel, stride, padding, oh, ow):
    """x inside a border of ``fill`` wide enough for every window (ceil_mode's may run past the padding)."""
    n, c, h, w = x.shape
    hp = max(h + 2 * padding[0], (oh - 1) * stride[0] + kernel[0])
    wp = max(w + 2 * padding[1], (ow - 1) * stride[1] + kernel[1])
    xp = np.full((n, c, hp, wp), fill, x.dtype)
    xp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + w] = x
    return xp


def _window(i, j, stride, oh, ow):
    return slice(i, i + stride[0] * (oh - 1) + 1, stride[0]), slice(j, j + stride[1] * (ow - 1) + 1, stride[1])


def _inside(i, size, stride, pad, count):
    """Which of the ``count`` windows have tap ``i`` inside the real input, and the input index."""
    pos = np.arange(count) * stride - pad + i
    return (pos >= 0) & (pos < size), pos


def maxpool2d_forward(out, indices, x, kernel, stride, padding):
    """out, indices (N, C, OH, OW) <- window maxima of x (N, C, H, W); padding never wins."""
    n, c, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    xp = _padded(x, 0, kernel, stride, padding, oh, ow)
    best = np.zeros(out.shape, x.dtype)
    arg = np.full(out.shape, -1, np.int64)
    for i in range(kernel[0]):
        ok_y, iy = _inside(i, h, stride[0], padding[0], oh)
        for j in range(kernel[1]):
            ok_x, ix = _inside(j, w, stride[1], padding[1], ow)
            v = xp[(slice(None), slice(None)) + _window(i, j, stride, oh, ow)]
            # The compiled kernels' rule: the first maximum in scan order wins, a NaN wins and stays.
            take = (ok_y[:, None] & ok_x[None, :]) & ((arg < 0) | ((best == best) & ~(v <= best)))
            best = np.where(take, v, best)
            arg = np.where(take, iy[:, None] * w + ix[None, :], arg)
    out[...] = best
    indices[...] = arg


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
