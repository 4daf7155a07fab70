"""Direct stride-1 convolution on explicit vectors (simd.py): no im2col, no library GEMM.

Each input plane is zero-padded and flattened (width Wp = W + 2 pw), and the output is computed
on the same "wide" grid: output position q = oy * Wp + ox, where the columns ox >= OW are junk
and dropped at the end. Tap (i, j) of every output position then reads the input at the constant
offset i * Wp + j, so a run of consecutive outputs reads a run of consecutive inputs: one vector
load. A tile is 3 vectors of consecutive positions x 4 output channels, 12 accumulators kept in
registers through the whole reduction over input channels and taps; per (channel, tap) it loads
3 input vectors, broadcasts 4 weights and issues 12 FMAs.

The input gradient is the same kernel: the forward convolution of dy, padded by KH-1-ph and
KW-1-pw, with the weights transposed (K <-> C) and flipped.

Shapes: x (N, C, H, W), w (K, C, KH, KW), b (K,) or None, out (N, K, OH, OW); stride 1,
dilation 1, groups 1, padding at most KH-1 / KW-1.
"""

import numpy as np
from numba import njit, prange

from ..shapes import conv2d_output_size
from ..workspace import scratch
from .simd import LANES, vfma, vload, vsplat, vstore, vsum

TILE_CHANNELS = 4
TILE_POSITIONS = 3 * LANES
# Input channels per weight-gradient task: their planes and 4 of dy, for one sample, fit in L1.
WGRAD_CHANNELS = 4
ENABLED = True  # tests switch it off to compare with the other paths
# Below this many output positions per plane, the wide grid's junk columns and the rounding to
# whole tiles waste too much (an 8x8 plane with padding 1: a third of the work), and the GEMM
# paths are faster (benchmarks/NOTES.md, entry 32).
MIN_POSITIONS = 100


def usable(x, w, stride, padding, dilation, groups):
    """Stride 1, dilation 1, groups 1, padding inside the kernel (so the input gradient is a
    convolution of the same kind), and output planes of at least MIN_POSITIONS positions."""
    kh, kw = w.shape[2], w.shape[3]
    oh = conv2d_output_size(x.shape[2], kh, 1, padding[0], 1)
    ow = conv2d_output_size(x.shape[3], kw, 1, padding[1], 1)
    return (
        ENABLED
        and oh * ow >= MIN_POSITIONS
        and tuple(stride) == (1, 1)
        and tuple(dilation) == (1, 1)
        and groups == 1
        and 0 <= padding[0] <= kh - 1
        and 0 <= padding[1] <= kw - 1
    )


@njit(parallel=True, cache=True)
def _to_flat_grid(dst, src, top, left, wp):
    """dst (N, D, L) <- each plane of src (N, S, H, W) at row ``top`` and column ``left`` of a
    flat grid of rows of width wp; zeros everywhere else, and in the planes past S (D >= S)."""
    n_batch, planes = dst.shape[0], dst.shape[1]
    channels, height, width = src.shape[1], src.shape[2], src.shape[3]
    for task in prange(n_batch * planes):
        n, c = task // planes, task % planes
        grid = dst[n, c]
        grid[:] = 0
        if c < channels:
            for iy in range(height):
                row = (iy + top) * wp + left
                for ix in range(width):
                    grid[row + ix] = src[n, c, iy, ix]


@njit(parallel=True, cache=True)
def _pack_weights(packed, w, transpose_flip):
    """packed (K4/4, C, KH, KW, 4) <- w (K, C, KH, KW), zero past K; with ``transpose_flip``,
    from w (C, K, KH, KW) transposed and flipped (the input gradient's weights)."""
    blocks, channels, kh, kw, tile = packed.shape
    k_out = w.shape[1] if transpose_flip else w.shape[0]
    for kb in prange(blocks):
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    for r in range(tile):
                        k = kb * tile + r
                        if k >= k_out:
                            packed[kb, c, i, j, r] = 0
                        elif transpose_flip:
                            packed[kb, c, i, j, r] = w[c, k, kh - 1 - i, kw - 1 - j]
                        else:
                            packed[kb, c, i, j, r] = w[k, c, i, j]


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _tiles(y, xp, packed, wp, zero):
    """y (N, K4, Lq) = the wide-grid convolution of xp (N, C, L) with packed weights; Lq is a
    multiple of TILE_POSITIONS and L covers every tap of the last tile."""
    n_batch, k4, lq = y.shape
    blocks, channels, kh, kw, _ = packed.shape
    for task in prange(n_batch * blocks):
        n, kb = task // blocks, task % blocks
        y0, y1, y2, y3 = y[n, 4 * kb], y[n, 4 * kb + 1], y[n, 4 * kb + 2], y[n, 4 * kb + 3]
        for q0 in range(0, lq, TILE_POSITIONS):
            a00 = a01 = a02 = a10 = a11 = a12 = vsplat(zero)
            a20 = a21 = a22 = a30 = a31 = a32 = vsplat(zero)
            for c in range(channels):
                plane = xp[n, c]
                weights = packed[kb, c]
                for i in range(kh):
                    for j in range(kw):
                        at = q0 + i * wp + j
                        x0, x1, x2 = vload(plane, at), vload(plane, at + LANES), vload(plane, at + 2 * LANES)
                        t = weights[i, j]
                        s = vsplat(t[0])
                        a00, a01, a02 = vfma(s, x0, a00), vfma(s, x1, a01), vfma(s, x2, a02)
                        s = vsplat(t[1])
                        a10, a11, a12 = vfma(s, x0, a10), vfma(s, x1, a11), vfma(s, x2, a12)
                        s = vsplat(t[2])
                        a20, a21, a22 = vfma(s, x0, a20), vfma(s, x1, a21), vfma(s, x2, a22)
                        s = vsplat(t[3])
                        a30, a31, a32 = vfma(s, x0, a30), vfma(s, x1, a31), vfma(s, x2, a32)
            vstore(y0, q0, a00)
            vstore(y0, q0 + LANES, a01)
            vstore(y0, q0 + 2 * LANES, a02)
            vstore(y1, q0, a10)
            vstore(y1, q0 + LANES, a11)
            vstore(y1, q0 + 2 * LANES, a12)
            vstore(y2, q0, a20)
            vstore(y2, q0 + LANES, a21)
            vstore(y2, q0 + 2 * LANES, a22)
            vstore(y3, q0, a30)
            vstore(y3, q0 + LANES, a31)
            vstore(y3, q0 + 2 * LANES, a32)


@njit(parallel=True, cache=True)
def _wide_to_nchw(out, y, b, has_bias, wp):
    """out (N, K, OH, OW) <- the valid columns of y (N, K4, Lq) (+ b (K,))."""
    n_batch, k_out, oh, ow = out.shape
    for plane in prange(n_batch * k_out):
        n, k = plane // k_out, plane % k_out
        src = y[n, k]
        for oy in range(oh):
            if has_bias:  # two loops: a literal 0 for the missing bias would type the sum float64
                for ox in range(ow):
                    out[n, k, oy, ox] = src[oy * wp + ox] + b[k]
            else:
                for ox in range(ow):
                    out[n, k, oy, ox] = src[oy * wp + ox]


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _weight_grad(dw, dy_wide, xp, wp, zero):
    """dw (K, C, KH, KW) += sum over samples and positions of dy_wide (N, K4, Lq) times the
    shifted input planes xp (N, C, L).

    A task is WGRAD_CHANNELS input channels x 4 output channels, and its whole reduction over
    samples and positions happens inside it, so the result does not depend on the thread count.
    Samples are the outer loop: one sample's planes (a few input channels, 4 of dy) stay in L1
    while every tap reads them. Three taps of a row x 4 output channels are 12 accumulators in
    registers for one pass over the positions; between passes they wait in ``acc``, and every
    ``group`` samples their float32 sums go into float64 ``total``."""
    k_out, channels, kh, kw = dw.shape
    n_batch, k4, lq = dy_wide.shape
    blocks, cblocks, jblocks = k4 // 4, -(-channels // WGRAD_CHANNELS), -(-kw // 3)
    # About 256 products per lane summed in float32 before float64, as a blocked GEMM sums.
    group = max(1, 256 // (lq // LANES))
    for task in prange(cblocks * blocks):
        kb, cb = task // cblocks, task % cblocks
        c0, c1 = cb * WGRAD_CHANNELS, min(cb * WGRAD_CHANNELS + WGRAD_CHANNELS, channels)
        total = np.zeros((WGRAD_CHANNELS, 4, kh, kw))
        acc = np.empty((WGRAD_CHANNELS, kh, jblocks, 12 * LANES), dtype=dy_wide.dtype)
        for n0 in range(0, n_batch, group):
            acc[:] = 0
            for n in range(n0, min(n0 + group, n_batch)):
                g0, g1, g2, g3 = (
                    dy_wide[n, 4 * kb],
                    dy_wide[n, 4 * kb + 1],
                    dy_wide[n, 4 * kb + 2],
                    dy_wide[n, 4 * kb + 3],
                )
                for c in range(c0, c1):
                    plane = xp[n, c]
                    for i in range(kh):
                        for jb in range(jblocks):
                            base = i * wp + 3 * jb
                            a = acc[c - c0, i, jb]
                            a00, a01, a02 = vload(a, 0), vload(a, LANES), vload(a, 2 * LANES)
                            a10, a11, a12 = vload(a, 3 * LANES), vload(a, 4 * LANES), vload(a, 5 * LANES)
                            a20, a21, a22 = vload(a, 6 * LANES), vload(a, 7 * LANES), vload(a, 8 * LANES)
                            a30, a31, a32 = vload(a, 9 * LANES), vload(a, 10 * LANES), vload(a, 11 * LANES)
                            for q in range(0, lq, LANES):
                                x0 = vload(plane, base + q)
                                x1 = vload(plane, base + q + 1)
                                x2 = vload(plane, base + q + 2)
                                d = vload(g0, q)
                                a00, a01, a02 = vfma(d, x0, a00), vfma(d, x1, a01), vfma(d, x2, a02)
                                d = vload(g1, q)
                                a10, a11, a12 = vfma(d, x0, a10), vfma(d, x1, a11), vfma(d, x2, a12)
                                d = vload(g2, q)
                                a20, a21, a22 = vfma(d, x0, a20), vfma(d, x1, a21), vfma(d, x2, a22)
                                d = vload(g3, q)
                                a30, a31, a32 = vfma(d, x0, a30), vfma(d, x1, a31), vfma(d, x2, a32)
                            vstore(a, 0, a00), vstore(a, LANES, a01), vstore(a, 2 * LANES, a02)
                            vstore(a, 3 * LANES, a10), vstore(a, 4 * LANES, a11), vstore(a, 5 * LANES, a12)
                            vstore(a, 6 * LANES, a20), vstore(a, 7 * LANES, a21), vstore(a, 8 * LANES, a22)
                            vstore(a, 9 * LANES, a30), vstore(a, 10 * LANES, a31), vstore(a, 11 * LANES, a32)
            # Each group's sums go into float64: long reductions keep their precision.
            for c in range(c0, c1):
                for i in range(kh):
                    for jb in range(jblocks):
                        for r in range(4):
                            for dj in range(min(3, kw - 3 * jb)):
                                total[c - c0, r, i, 3 * jb + dj] += vsum(
                                    vload(acc[c - c0, i, jb], (3 * r + dj) * LANES)
                                )
        for c in range(c0, c1):
            for r in range(4):
                k = 4 * kb + r
                if k < k_out:
                    for i in range(kh):
                        for j in range(kw):
                            dw[k, c, i, j] += total[c - c0, r, i, j]


def _convolve(out, x, w, b, padding, transpose_flip):
    """out (N, K, OH, OW) = the stride-1 convolution of x with w (+ b); the kernel of both passes."""
    n_batch, channels, height, width = x.shape
    kh, kw = w.shape[2], w.shape[3]
    k_out, oh = out.shape[1], out.shape[2]
    wp = width + 2 * padding[1]
    lq = -(-oh * wp // TILE_POSITIONS) * TILE_POSITIONS
    # The last tile reads up to lq - 1 + (kh - 1) wp + kw - 1 + a vector past it.
    length = max((height + 2 * padding[0]) * wp, lq + (kh - 1) * wp + kw + LANES)
    xp = scratch("conv_simd.x", (n_batch, channels, length), x.dtype)
    _to_flat_grid(xp, x, padding[0], padding[1], wp)
    blocks = -(-k_out // TILE_CHANNELS)
    packed = scratch("conv_simd.w", (blocks, channels, kh, kw, TILE_CHANNELS), x.dtype)
    _pack_weights(packed, w, transpose_flip)
    y = scratch("conv_simd.y", (n_batch, blocks * TILE_CHANNELS, lq), x.dtype)
    _tiles(y, xp, packed, wp, x.dtype.type(0))
    has_bias = b is not None
    _wide_to_nchw(out, y, b if has_bias else out.reshape(-1)[:1], has_bias, wp)


def conv2d_forward(out, x, w, b, padding):
    """out (N, K, OH, OW) = conv(x, w) + b, stride 1 (see ``usable``)."""
    _convolve(out, x, w, b, padding, False)


def conv2d_weight_grad(dw, dy, x, padding):
    """dw (K, C, KH, KW) += the gradient of the weights, from dy (N, K, OH, OW) and x (N, C, H, W)."""
    n_batch, channels, height, width = x.shape
    k_out, _, kh, kw = dw.shape
    oh = dy.shape[2]
    wp = width + 2 * padding[1]
    lq = -(-oh * wp // LANES) * LANES
    # Taps read up to (kh - 1) wp + kw + 2 past the last position: the padded plane covers them.
    length = max((height + 2 * padding[0]) * wp, lq + (kh - 1) * wp + kw + 2)
    xp = scratch("conv_simd.x", (n_batch, channels, length), x.dtype)
    _to_flat_grid(xp, x, padding[0], padding[1], wp)
    dy_wide = scratch("conv_simd.y", (n_batch, -(-k_out // TILE_CHANNELS) * TILE_CHANNELS, lq), x.dtype)
    _to_flat_grid(dy_wide, dy, 0, 0, wp)  # zeros in the junk columns and past K
    _weight_grad(dw, dy_wide, xp, wp, x.dtype.type(0))


@njit(parallel=True, cache=True)
def bias_grad(db, dy):
    """db (K,) += the sums of dy (N, K, OH, OW) over samples and positions (in float64)."""
    n_batch, k_out = dy.shape[0], dy.shape[1]
    for k in prange(k_out):
        total = 0.0
        for n in range(n_batch):
            for value in dy[n, k].ravel():
                total += value
        db[k] += total


def conv2d_backward(dx, dw, db, dy, x, w, padding):
    """The gradients of conv2d_forward: dx overwritten, dw and db accumulated; None skips one."""
    if dw is not None:
        conv2d_weight_grad(dw, dy, x, padding)
    if db is not None:
        bias_grad(db, dy)
    if dx is not None:
        conv2d_input_grad(dx, dy, w, padding)


def conv2d_input_grad(dx, dy, w, padding):
    """dx (N, C, H, W) = the gradient of the input, from dy (N, K, OH, OW) and w (K, C, KH, KW)."""
    kh, kw = w.shape[2], w.shape[3]
    _convolve(dx, dy, w, None, (kh - 1 - padding[0], kw - 1 - padding[1]), True)


__all__ = ["bias_grad", "conv2d_backward", "conv2d_forward", "conv2d_input_grad", "conv2d_weight_grad", "usable"]
