"""Explicit 2-D padding on CUDA: twins of ``kernels/cpu/pad.py``. Backward gathers: each input
pixel sums the gradients of the padded positions that copy it (no atomics)."""

from numba import cuda

from .. import shared_math
from .launch import launch_1d, require_device

_math = shared_math.compiled("cuda", cuda.jit(device=True))
_source = _math.pad_source


@cuda.jit
def _pad_fwd(out, x, top, left, mode, zero):
    n_batch, channels, out_h, out_w = out.shape
    height, width = x.shape[2], x.shape[3]
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        j, i = e % out_w, (e // out_w) % out_h
        plane = e // (out_w * out_h)
        n, c = plane // channels, plane % channels
        si, sj = _source(i - top, height, mode), _source(j - left, width, mode)
        out[n, c, i, j] = x[n, c, si, sj] if si >= 0 and sj >= 0 else zero


@cuda.jit
def _pad_bwd(dx, dy, top, left, mode, zero):
    n_batch, channels, height, width = dx.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        sj, si = e % width, (e // width) % height
        plane = e // (width * height)
        n, c = plane // channels, plane % channels
        acc = zero
        for i in range(out_h):
            if _source(i - top, height, mode) == si:
                for j in range(out_w):
                    if _source(j - left, width, mode) == sj:
                        acc += dy[n, c, i, j]
        dx[n, c, si, sj] = acc


def pad2d_forward(out, x, top, left, mode):
    """out (N, C, H + top + bottom, W + left + right) = x padded by ``mode`` (PAD_*)."""
    require_device("pad2d_forward", out=out, x=x)
    launch_1d(_pad_fwd, out.size, out, x, int(top), int(left), int(mode), out.dtype.type(0))


def pad2d_backward(dx, dy, top, left, mode):
    """dx (N, C, H, W) = the gradient dy of the padded array summed onto the pixels it copies."""
    require_device("pad2d_backward", dx=dx, dy=dy)
    launch_1d(_pad_bwd, dx.size, dx, dy, int(top), int(left), int(mode), dx.dtype.type(0))
