"""Explicit 2-D padding in NumPy (Conv2d's padding modes). Shapes: x, dx (N, C, H, W);
out, dy (N, C, H + top + bottom, W + left + right); mode one of shared_math.PAD_*."""

import numpy as np

from ..shared_math import pad_source


def _sources(count, offset, size, mode):
    """For each padded position, the source index it copies (-1: a zero)."""
    return np.array([pad_source(i - offset, size, mode) for i in range(count)], np.int64)


def pad2d_forward(out, x, top, left, mode):
    """out (N, C, H + top + bottom, W + left + right) = x padded by ``mode`` (PAD_*)."""
    rows = _sources(out.shape[2], int(top), x.shape[2], int(mode))
    cols = _sources(out.shape[3], int(left), x.shape[3], int(mode))
    gathered = x[:, :, np.maximum(rows, 0)][:, :, :, np.maximum(cols, 0)]
    inside = (rows >= 0)[:, None] & (cols >= 0)[None, :]
    np.copyto(out, np.where(inside, gathered, out.dtype.type(0)))


def pad2d_backward(dx, dy, top, left, mode):
    """dx (N, C, H, W) = the gradient dy of the padded array summed onto the pixels it copies."""
    n, c, h, w = dx.shape
    rows = _sources(dy.shape[2], int(top), h, int(mode))
    cols = _sources(dy.shape[3], int(left), w, int(mode))
    inside = (rows >= 0)[:, None] & (cols >= 0)[None, :]
    target = np.where(inside, rows[:, None] * w + cols[None, :], h * w)  # h * w: a bin for the zeros
    planes = np.arange(n * c).reshape(n, c, 1, 1) * (h * w + 1)
    sums = np.bincount((planes + target).ravel(), weights=dy.ravel(), minlength=n * c * (h * w + 1))
    dx[...] = sums.reshape(n, c, h * w + 1)[:, :, : h * w].reshape(dx.shape)
