"""Pooling on the CPU: max (with argmax routing), average, global and adaptive average.

Shapes: x (N, C, H, W), out (N, C, OH, OW), indices (N, C, OH, OW) int32 holding the flat
position iy * W + ix of each window's maximum in its input plane. Average pooling divides as
PyTorch does (``shared_math.pool_divisor``: padding counted unless count_include_pad is False).
OH and OW are read from out, so ceil_mode needs nothing here. Every kernel runs in parallel over
(n, c) planes, whose writes are disjoint.
"""

import numpy as np
from numba import njit, prange

from .. import shared_math

_math = shared_math.compiled("cpu", njit(inline="always"))
_pool_divisor = _math.pool_divisor
_window_mean = _math.window_mean
_window_span = _math.window_span
_plane_mean = _math.plane_mean


@njit(parallel=True, cache=True)
def _max_fwd_2x2(out, indices, x):
    """The common case (2x2 windows, stride 2, no padding) without per-tap bounds checks.

    A row of windows is first taken as if it held no NaN: a candidate replaces the best when
    strictly greater (ties keep the first in scan order), with selects on 32-bit tap codes, so the
    loop vectorises. A row that held a NaN is then done again by the general rule (as in PyTorch,
    a NaN wins and then stays: a candidate v replaces the best m when m is not NaN and v > m or v
    is NaN). Selects with NaN tests and 64-bit indices on every window would not vectorise
    (benchmarks/NOTES.md, entry 40).
    """
    n_batch, channels, height, width = x.shape
    oh, ow = out.shape[2], out.shape[3]
    below, after_below = np.int32(width), np.int32(width + 1)
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        for oy in range(oh):
            top, bottom = x[n, c, 2 * oy], x[n, c, 2 * oy + 1]
            dst, where = out[n, c, oy], indices[n, c, oy]
            row0 = np.int32(2 * oy * width)
            nan = False
            for ox in range(ow):
                j = 2 * ox
                a, b, cc, d = top[j], top[j + 1], bottom[j], bottom[j + 1]
                nan |= (a != a) | (b != b) | (cc != cc) | (d != d)
                take = b > a
                m, k = (b, np.int32(1)) if take else (a, np.int32(0))
                take = cc > m
                m, k = (cc, below) if take else (m, k)
                take = d > m
                m, k = (d, after_below) if take else (m, k)
                dst[ox] = m
                where[ox] = row0 + np.int32(j) + k
            if nan:
                for ox in range(ow):
                    j = 2 * ox
                    a, b, cc, d = top[j], top[j + 1], bottom[j], bottom[j + 1]
                    take = (a == a) & ((b > a) | (b != b))
                    m, k = (b, j + 1) if take else (a, j)
                    take = (m == m) & ((cc > m) | (cc != cc))
                    m, k = (cc, width + j) if take else (m, k)
                    take = (m == m) & ((d > m) | (d != d))
                    m, k = (d, width + j + 1) if take else (m, k)
                    dst[ox] = m
                    where[ox] = row0 + k


def _plain_2x2(kernel, stride, padding, pooled, full):
    """2x2 windows of stride 2, no padding, every window inside (not a ceil_mode extra one)."""
    return (
        kernel == (2, 2)
        and stride == (2, 2)
        and padding == (0, 0)
        and 2 * pooled.shape[2] <= full.shape[2]
        and 2 * pooled.shape[3] <= full.shape[3]
    )


def maxpool2d_forward(out, indices, x, kernel, stride, padding):
    """out, indices (N, C, OH, OW) <- window maxima of x (N, C, H, W); padding never wins."""
    if _plain_2x2(kernel, stride, padding, out, x):
        _max_fwd_2x2(out, indices, x)
    else:
        _max_fwd(out, indices, x, kernel, stride, padding)


@njit(parallel=True, cache=True)
def _max_fwd(out, indices, x, kernel, stride, padding):
    """Any window. Each output starts at its window's first pixel inside the input; then tap by
    tap, over the run of output columns whose pixel lies inside, a pixel takes over only when
    strictly greater (ties keep the first in scan order) or a NaN (which, once taken, stays, as in
    PyTorch). The runs index flat plane views with unsigned offsets and select without branches,
    so LLVM vectorises them (benchmarks/NOTES.md, entry 29): no per-pixel bounds checks and no
    negative-index wraparound."""
    n_batch, channels, height, width = x.shape
    oh, ow = out.shape[2], out.shape[3]
    kh, kw, sh, sw, ph, pw = kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1]
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        src = x[n, c].reshape(height * width)
        best = out[n, c].reshape(oh * ow)
        where = indices[n, c].reshape(oh * ow)
        for oy in range(oh):
            y0 = oy * sh - ph
            first_row = max(y0, 0)
            row = oy * ow
            for ox in range(ow):
                ix = max(ox * sw - pw, 0)
                best[row + ox] = src[first_row * width + ix]
                where[row + ox] = first_row * width + ix
            for i in range(kh):
                iy = y0 + i
                if iy < 0 or iy >= height:
                    continue
                for j in range(kw):
                    # The output columns whose tap j lies inside: 0 <= ox * sw - pw + j < width.
                    lo = max(0, (pw - j + sw - 1) // sw)
                    hi = min(ow, (width - 1 + pw - j) // sw + 1)
                    if hi <= lo:
                        continue
                    first_src = np.uint64(iy * width + lo * sw - pw + j)
                    first_dst = np.uint64(row + lo)
                    step = np.uint64(sw)
                    for q in range(np.uint64(hi - lo)):
                        s = first_src + q * step
                        d = first_dst + q
                        v = src[s]
                        b = best[d]
                        take = (v > b) | ((v != v) & (b == b))
                        best[d] = v if take else b
                        where[d] = np.int32(s) if take else where[d]


@njit(parallel=True, cache=True)
def _max_bwd(dx, dy, indices, overlapping):
    """dx = dy scattered through ``indices``, one (n, c) plane per thread: summed where windows
    overlap; where they cannot (no input in two windows), each value is simply stored, which is
    twice as fast."""
    n_batch, channels, height, width = dx.shape
    oh, ow = dy.shape[2], dy.shape[3]
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        flat = dx[n, c].reshape(height * width)
        flat[:] = 0
        gradient, where = dy[n, c].reshape(oh * ow), indices[n, c].reshape(oh * ow)
        if overlapping:
            for q in range(oh * ow):
                flat[where[q]] += gradient[q]
        else:
            for q in range(oh * ow):
                flat[where[q]] = gradient[q]


def maxpool2d_backward(dx, dy, indices, kernel, stride, padding):
    """dx (N, C, H, W) = dy (N, C, OH, OW) routed to each window's argmax (summed on overlap).

    The CPU scatters through ``indices`` one (n, c) plane per thread and needs no window
    geometry; the CUDA twin gathers per input element and uses kernel/stride/padding for that.
    """
    _max_bwd(dx, dy, indices, kernel[0] > stride[0] or kernel[1] > stride[1])


@njit(parallel=True, cache=True)
def _avg_fwd(out, x, kernel, stride, padding, include_pad):
    n_batch, channels, height, width = x.shape
    oh, ow = out.shape[2], out.shape[3]
    kh, kw, sh, sw, ph, pw = kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1]
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        for oy in range(oh):
            for ox in range(ow):
                out[n, c, oy, ox] = _window_mean(x, n, c, oy, ox, kh, kw, sh, sw, ph, pw, include_pad)


@njit(parallel=True, cache=True)
def _avg_bwd(dx, dy, kernel, stride, padding, include_pad):
    n_batch, channels, height, width = dx.shape
    oh, ow = dy.shape[2], dy.shape[3]
    kh, kw, sh, sw, ph, pw = kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1]
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        for iy in range(height):
            for ix in range(width):
                dx[n, c, iy, ix] = 0
        for oy in range(oh):
            for ox in range(ow):
                g = dy[n, c, oy, ox] / _pool_divisor(oy, ox, kh, kw, sh, sw, ph, pw, height, width, include_pad)
                y0, i0, i1 = _window_span(oy, kh, sh, ph, height)
                x0, j0, j1 = _window_span(ox, kw, sw, pw, width)
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        dx[n, c, y0 + i, x0 + j] += g


def avgpool2d_forward(out, x, kernel, stride, padding, count_include_pad=True):
    """out (N, C, OH, OW) = window means of x (N, C, H, W); the divisor counts the zero padding
    (count_include_pad, PyTorch's default) or only real pixels. OH, OW come from out (ceil_mode
    gives one more window where the last one starts inside the input)."""
    _avg_fwd(out, x, kernel, stride, padding, bool(count_include_pad))


def avgpool2d_backward(dx, dy, kernel, stride, padding, count_include_pad=True):
    """dx (N, C, H, W) = dy (N, C, OH, OW) spread evenly over each window (its divisor as forward's)."""
    _avg_bwd(dx, dy, kernel, stride, padding, bool(count_include_pad))


@njit(parallel=True, cache=True)
def global_avgpool2d_forward(out, x):
    """out (N, C, 1, 1) = mean of x (N, C, H, W) over H and W."""
    n_batch, channels = x.shape[0], x.shape[1]
    for plane in prange(n_batch * channels):
        out[plane // channels, plane % channels, 0, 0] = _plane_mean(x, plane // channels, plane % channels)


@njit(parallel=True, cache=True)
def global_avgpool2d_backward(dx, dy):
    """dx (N, C, H, W) = dy (N, C, 1, 1) / (H * W) everywhere."""
    n_batch, channels, height, width = dx.shape
    inv_area = 1.0 / (height * width)
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        g = dy[n, c, 0, 0] * inv_area
        for iy in range(height):
            for ix in range(width):
                dx[n, c, iy, ix] = g


@njit(parallel=True, cache=True)
def _adaptive_avg_fwd(out, x):
    n_batch, channels, height, width = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for plane in prange(n_batch * channels):
        n, c = plane // channels, plane % channels
        for oy in range(oh):
            y0, y1 = (oy * height) // oh, -((-(oy + 1) * height) // oh)
            for ox in range(ow):
                x0, x1 = (ox * width) // ow, -((-(ox + 1) * width) // ow)
                acc = 0.0
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        acc += x[n, c, iy, ix]
                out[n, c, oy, ox] = acc / ((y1 - y0) * (x1 - x0))


@njit(parallel=True, cache=True)
def _adaptive_avg_bwd(dx, dy):
    n_batch, channels, height, width = dx.shape
    oh, ow = dy.shape[2], dy.shape[3]
    for plane in prange(n_batch * channels):
        n, c = plane // channels, plane % channels
        dx[n, c] = 0
        for oy in range(oh):
            y0, y1 = (oy * height) // oh, -((-(oy + 1) * height) // oh)
            for ox in range(ow):
                x0, x1 = (ox * width) // ow, -((-(ox + 1) * width) // ow)
                g = dy[n, c, oy, ox] / ((y1 - y0) * (x1 - x0))
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        dx[n, c, iy, ix] += g


def adaptive_avgpool2d_forward(out, x):
    """out (N, C, OH, OW) = means of x (N, C, H, W) over PyTorch's adaptive bins: rows
    floor(i H / OH) to ceil((i + 1) H / OH), likewise columns (bins may overlap)."""
    _adaptive_avg_fwd(out, x)


def adaptive_avgpool2d_backward(dx, dy):
    """dx (N, C, H, W) = dy (N, C, OH, OW) spread evenly over each bin (summed where bins overlap)."""
    _adaptive_avg_bwd(dx, dy)
