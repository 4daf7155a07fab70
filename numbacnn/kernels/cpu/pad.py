"""Explicit 2-D padding on the CPU (Conv2d's padding modes and asymmetric "same" padding).

x (N, C, H, W) -> out (N, C, H + top + bottom, W + left + right), bottom and right read from
out's shape; mode is one of shared_math's PAD_* constants. Backward routes the gradient of every
padded pixel to the pixel it copies (pixels copied several times sum their gradients).
"""

from numba import njit, prange

from .. import shared_math

_math = shared_math.compiled("cpu", njit(inline="always"))
_source = _math.pad_source


@njit(parallel=True, cache=True)
def _pad_fwd(out, x, top, left, mode):
    n_batch, channels, height, width = x.shape
    for plane in prange(n_batch * channels):
        n, c = plane // channels, plane % channels
        for i in range(out.shape[2]):
            si = _source(i - top, height, mode)
            for j in range(out.shape[3]):
                sj = _source(j - left, width, mode)
                out[n, c, i, j] = x[n, c, si, sj] if si >= 0 and sj >= 0 else 0


@njit(parallel=True, cache=True)
def _pad_bwd(dx, dy, top, left, mode):
    n_batch, channels, height, width = dx.shape
    for plane in prange(n_batch * channels):  # planes are disjoint: the scatter stays in one
        n, c = plane // channels, plane % channels
        dx[n, c] = 0
        for i in range(dy.shape[2]):
            si = _source(i - top, height, mode)
            if si < 0:
                continue
            for j in range(dy.shape[3]):
                sj = _source(j - left, width, mode)
                if sj >= 0:
                    dx[n, c, si, sj] += dy[n, c, i, j]


def pad2d_forward(out, x, top, left, mode):
    """out (N, C, H + top + bottom, W + left + right) = x padded by ``mode`` (PAD_*)."""
    _pad_fwd(out, x, int(top), int(left), int(mode))


def pad2d_backward(dx, dy, top, left, mode):
    """dx (N, C, H, W) = the gradient dy of the padded array summed onto the pixels it copies."""
    _pad_bwd(dx, dy, int(top), int(left), int(mode))
