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

_pool_divisor = njit(inline="always")(shared_math.pool_divisor)


@njit(parallel=True, cache=True)
def _max_fwd_2x2(out, indices, x):
    """The common case (2x2 windows, stride 2, no padding) without per-tap bounds checks.

    Written with selects (``&``/``|`` on booleans, conditional expressions) rather than branches,
    so the loop over a row vectorises. As in the general kernel a NaN wins and then stays: a
    candidate v replaces the best m when m is not NaN and (v > m or v is NaN).
    """
    n_batch, channels, height, width = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        for oy in range(oh):
            top = x[n, c, 2 * oy]
            bottom = x[n, c, 2 * oy + 1]
            dst = out[n, c, oy]
            where = indices[n, c, oy]
            row0 = 2 * oy * width
            for ox in range(ow):
                j = 2 * ox
                a, b, cc, d = top[j], top[j + 1], bottom[j], bottom[j + 1]
                take = (a == a) & ((b > a) | (b != b))
                m = b if take else a
                k = j + 1 if take else j
                take = (m == m) & ((cc > m) | (cc != cc))
                m = cc if take else m
                k = width + j if take else k
                take = (m == m) & ((d > m) | (d != d))
                m = d if take else m
                k = width + j + 1 if take else k
                dst[ox] = m
                where[ox] = row0 + k


@njit(parallel=True, cache=True)
def _max_bwd_2x2(dx, dy, indices, zero):
    """dx for 2x2 windows of stride 2 without padding: each input lies in at most one window, so
    every position is written once (the window's gradient at its argmax, 0 elsewhere)."""
    n_batch, channels, height, width = dx.shape
    oh, ow = dy.shape[2], dy.shape[3]
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        for oy in range(oh):
            top = dx[n, c, 2 * oy]
            bottom = dx[n, c, 2 * oy + 1]
            g = dy[n, c, oy]
            where = indices[n, c, oy]
            row0 = 2 * oy * width
            for ox in range(ow):
                k = where[ox] - row0 - 2 * ox  # 0, 1 (top row) or width, width + 1 (bottom row)
                v = g[ox]
                top[2 * ox] = v if k == 0 else zero
                top[2 * ox + 1] = v if k == 1 else zero
                bottom[2 * ox] = v if k == width else zero
                bottom[2 * ox + 1] = v if k == width + 1 else zero
        # Rows and columns past the last window (odd H or W) get no gradient.
        for iy in range(2 * oh, height):
            dx[n, c, iy, :] = zero
        for iy in range(2 * oh):
            for ix in range(2 * ow, width):
                dx[n, c, iy, ix] = zero


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
def _max_bwd(dx, dy, indices):
    n_batch, channels, height, width = dx.shape
    oh, ow = dy.shape[2], dy.shape[3]
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        for iy in range(height):
            for ix in range(width):
                dx[n, c, iy, ix] = 0
        for oy in range(oh):
            for ox in range(ow):
                k = indices[n, c, oy, ox]
                dx[n, c, k // width, k % width] += dy[n, c, oy, ox]


def maxpool2d_backward(dx, dy, indices, kernel, stride, padding):
    """dx (N, C, H, W) = dy (N, C, OH, OW) routed to each window's argmax (summed on overlap).

    The CPU scatters through ``indices`` one (n, c) plane per thread and needs no window
    geometry; the CUDA twin gathers per input element and uses kernel/stride/padding for that.
    """
    if _plain_2x2(kernel, stride, padding, dy, dx):
        _max_bwd_2x2(dx, dy, indices, dx.dtype.type(0))
    else:
        _max_bwd(dx, dy, indices)


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
                acc = 0.0
                for i in range(kh):
                    iy = oy * sh - ph + i
                    if iy < 0 or iy >= height:
                        continue
                    for j in range(kw):
                        ix = ox * sw - pw + j
                        if ix >= 0 and ix < width:
                            acc += x[n, c, iy, ix]
                out[n, c, oy, ox] = acc / _pool_divisor(oy, ox, kh, kw, sh, sw, ph, pw, height, width, include_pad)


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
                for i in range(kh):
                    iy = oy * sh - ph + i
                    if iy < 0 or iy >= height:
                        continue
                    for j in range(kw):
                        ix = ox * sw - pw + j
                        if ix >= 0 and ix < width:
                            dx[n, c, iy, ix] += g


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
    n_batch, channels, height, width = x.shape
    inv_area = 1.0 / (height * width)
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        acc = 0.0
        for iy in range(height):
            for ix in range(width):
                acc += x[n, c, iy, ix]
        out[n, c, 0, 0] = acc * inv_area


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
