"""Pooling on CUDA: max (with argmax routing), average, global average.

Same shapes and conventions as ``kernels/cpu/pool.py``: indices (N, C, OH, OW) int32 hold the
flat position iy * W + ix of each window's maximum; average pooling counts padding in the divisor.
Forward kernels run one thread per output element; backward kernels one thread per input
element that gathers from the windows covering it (deterministic, no atomics).
"""

from numba import cuda

from .. import shared_math
from .launch import launch_1d, require_device

_math = shared_math.compiled("cuda", cuda.jit(device=True))
_pool_divisor = _math.pool_divisor
_window_mean = _math.window_mean
_window_span = _math.window_span
_plane_mean = _math.plane_mean


@cuda.jit(device=True)
def _windows(i, kernel, stride, padding, size_out):
    """[lo, hi) of the output positions whose window (kernel, stride, padding) covers input i."""
    top = i + padding - kernel + 1
    lo = 0 if top <= 0 else (top + stride - 1) // stride
    hi = min((i + padding) // stride + 1, size_out)
    return lo, hi


@cuda.jit
def _max_fwd(out, indices, x, kh, kw, sh, sw, ph, pw):
    n_batch, channels, height, width = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ox = e % ow
        oy = (e // ow) % oh
        c = (e // (ow * oh)) % channels
        n = e // (ow * oh * channels)
        best = -1
        best_val = x[n, c, 0, 0]
        y0, i0, i1 = _window_span(oy, kh, sh, ph, height)
        x0, j0, j1 = _window_span(ox, kw, sw, pw, width)
        for i in range(i0, i1):
            iy = y0 + i
            for j in range(j0, j1):
                ix = x0 + j
                v = x[n, c, iy, ix]
                # "not <=" lets a NaN win, and a NaN once taken stays (best_val == best_val fails for
                # it), so a NaN anywhere in the window propagates like PyTorch's max pooling.
                if best < 0 or (best_val == best_val and not (v <= best_val)):
                    best = iy * width + ix
                    best_val = v
        out[n, c, oy, ox] = best_val
        indices[n, c, oy, ox] = best


@cuda.jit
def _max_bwd(dx, dy, indices, kh, kw, sh, sw, ph, pw, zero):
    n_batch, channels, height, width = dx.shape
    oh, ow = dy.shape[2], dy.shape[3]
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        ix = e % width
        iy = (e // width) % height
        c = (e // (width * height)) % channels
        n = e // (width * height * channels)
        here = iy * width + ix
        acc = zero
        y_lo, y_hi = _windows(iy, kh, sh, ph, oh)
        x_lo, x_hi = _windows(ix, kw, sw, pw, ow)
        for oy in range(y_lo, y_hi):
            for ox in range(x_lo, x_hi):
                if indices[n, c, oy, ox] == here:
                    acc += dy[n, c, oy, ox]
        dx[n, c, iy, ix] = acc


@cuda.jit
def _avg_fwd(out, x, kh, kw, sh, sw, ph, pw, include_pad):
    n_batch, channels, height, width = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ox = e % ow
        oy = (e // ow) % oh
        c = (e // (ow * oh)) % channels
        n = e // (ow * oh * channels)
        out[n, c, oy, ox] = _window_mean(x, n, c, oy, ox, kh, kw, sh, sw, ph, pw, include_pad)


@cuda.jit
def _avg_bwd(dx, dy, kh, kw, sh, sw, ph, pw, include_pad):
    n_batch, channels, height, width = dx.shape
    oh, ow = dy.shape[2], dy.shape[3]
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        ix = e % width
        iy = (e // width) % height
        c = (e // (width * height)) % channels
        n = e // (width * height * channels)
        acc = 0.0
        y_lo, y_hi = _windows(iy, kh, sh, ph, oh)
        x_lo, x_hi = _windows(ix, kw, sw, pw, ow)
        for oy in range(y_lo, y_hi):
            for ox in range(x_lo, x_hi):
                acc += dy[n, c, oy, ox] / _pool_divisor(oy, ox, kh, kw, sh, sw, ph, pw, height, width, include_pad)
        dx[n, c, iy, ix] = acc


@cuda.jit
def _global_avg_fwd(out, x):
    n_batch, channels = x.shape[0], x.shape[1]
    for e in range(cuda.grid(1), n_batch * channels, cuda.gridsize(1)):
        out[e // channels, e % channels, 0, 0] = _plane_mean(x, e // channels, e % channels)


@cuda.jit
def _global_avg_bwd(dx, dy, inv_area):
    n_batch, channels, height, width = dx.shape
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        c = (e // (width * height)) % channels
        n = e // (width * height * channels)
        dx[n, c, (e // width) % height, e % width] = dy[n, c, 0, 0] * inv_area


def maxpool2d_forward(out, indices, x, kernel, stride, padding):
    """out, indices (N, C, OH, OW) <- window maxima of x (N, C, H, W); padding never wins."""
    require_device("maxpool2d_forward", out=out, indices=indices, x=x)
    launch_1d(_max_fwd, out.size, out, indices, x, *kernel, *stride, *padding)


def maxpool2d_backward(dx, dy, indices, kernel, stride, padding):
    """dx (N, C, H, W) = dy (N, C, OH, OW) routed to each window's argmax (summed on overlap)."""
    require_device("maxpool2d_backward", dx=dx, dy=dy, indices=indices)
    launch_1d(_max_bwd, dx.size, dx, dy, indices, *kernel, *stride, *padding, dx.dtype.type(0))


def avgpool2d_forward(out, x, kernel, stride, padding, count_include_pad=True):
    """out (N, C, OH, OW) = window means of x (N, C, H, W); divisors as PyTorch's (see the CPU twin)."""
    require_device("avgpool2d_forward", out=out, x=x)
    launch_1d(_avg_fwd, out.size, out, x, *kernel, *stride, *padding, bool(count_include_pad))


def avgpool2d_backward(dx, dy, kernel, stride, padding, count_include_pad=True):
    """dx (N, C, H, W) = dy (N, C, OH, OW) spread evenly over each window (its divisor as forward's)."""
    require_device("avgpool2d_backward", dx=dx, dy=dy)
    launch_1d(_avg_bwd, dx.size, dx, dy, *kernel, *stride, *padding, bool(count_include_pad))


def global_avgpool2d_forward(out, x):
    """out (N, C, 1, 1) = mean of x (N, C, H, W) over H and W."""
    require_device("global_avgpool2d_forward", out=out, x=x)
    launch_1d(_global_avg_fwd, x.shape[0] * x.shape[1], out, x)


def global_avgpool2d_backward(dx, dy):
    """dx (N, C, H, W) = dy (N, C, 1, 1) / (H * W) everywhere."""
    require_device("global_avgpool2d_backward", dx=dx, dy=dy)
    launch_1d(_global_avg_bwd, dx.size, dx, dy, dx.dtype.type(1.0 / (dx.shape[2] * dx.shape[3])))


@cuda.jit(device=True)
def _bin(i, size, bins):
    """[start, stop) of adaptive bin i of ``bins`` over ``size`` (PyTorch's floor/ceil bounds)."""
    return (i * size) // bins, -((-(i + 1) * size) // bins)


@cuda.jit
def _adaptive_avg_fwd(out, x):
    n_batch, channels, height, width = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ox, oy = e % ow, (e // ow) % oh
        c, n = (e // (ow * oh)) % channels, e // (ow * oh * channels)
        y0, y1 = _bin(oy, height, oh)
        x0, x1 = _bin(ox, width, ow)
        acc = 0.0
        for iy in range(y0, y1):
            for ix in range(x0, x1):
                acc += x[n, c, iy, ix]
        out[n, c, oy, ox] = acc / ((y1 - y0) * (x1 - x0))


@cuda.jit
def _adaptive_avg_bwd(dx, dy):
    n_batch, channels, height, width = dx.shape
    oh, ow = dy.shape[2], dy.shape[3]
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        ix, iy = e % width, (e // width) % height
        c, n = (e // (width * height)) % channels, e // (width * height * channels)
        acc = 0.0
        for oy in range(oh):
            y0, y1 = _bin(oy, height, oh)
            if y0 <= iy < y1:
                for ox in range(ow):
                    x0, x1 = _bin(ox, width, ow)
                    if x0 <= ix < x1:
                        acc += dy[n, c, oy, ox] / ((y1 - y0) * (x1 - x0))
        dx[n, c, iy, ix] = acc


def adaptive_avgpool2d_forward(out, x):
    """out (N, C, OH, OW) = means of x (N, C, H, W) over PyTorch's adaptive bins."""
    require_device("adaptive_avgpool2d_forward", out=out, x=x)
    launch_1d(_adaptive_avg_fwd, out.size, out, x)


def adaptive_avgpool2d_backward(dx, dy):
    """dx (N, C, H, W) = dy (N, C, OH, OW) spread evenly over each bin (summed where bins overlap)."""
    require_device("adaptive_avgpool2d_backward", dx=dx, dy=dy)
    launch_1d(_adaptive_avg_bwd, dx.size, dx, dy)
