"""Direct stride-1 convolution vectorised over output channels, for small planes (7x7, 8x8).

conv_simd.py vectorises over positions of a padded row, which wastes the padding columns: a third
of the work on a 7x7 plane. Here the vector runs over output channels instead, so nothing is
wasted whatever the plane's size: a tile is 6 output positions x 2 vectors of output channels
(12 accumulators); per tap it loads 2 weight vectors, broadcasts the 6 input pixels the tap reads
and issues 12 FMAs. The input gradient is the same kernel on dy padded by KH-1-ph, KW-1-pw, with
the weights transposed and flipped. The weight gradient vectorises over output channels too: dy
is laid out pixel-major, and a task (one input channel x 4 vectors of output channels) sums 3 taps
of a kernel row at a time (12 accumulators) over every sample and position, inside the task, so
the result does not depend on the thread count.

Shapes: x (N, C, H, W), w (K, C, KH, KW), b (K,) or None, out (N, K, OH, OW); stride 1,
dilation 1, groups 1, padding at most KH-1 / KW-1.
"""

import numpy as np
from numba import njit, prange

from ..shapes import conv2d_output_size
from ..workspace import scratch
from .conv_simd import MIN_POSITIONS, _pack_weights, _to_flat_grid, bias_grad, direct_positions
from .simd import LANES, vbroadcast, vfma, vload, vsplat, vstore

CHANNEL_VECTORS = 2  # output-channel vectors per forward tile
TILE = 6  # output positions per forward tile
BLOCK = CHANNEL_VECTORS * LANES
WGRAD_BLOCK = 4 * LANES  # output channels per weight-gradient task
WGRAD_CHANNELS = 4  # input channels per weight-gradient task
GROUP_PRODUCTS = 256
# Planes with fewer output positions run here, the others in conv_simd.py.
MAX_POSITIONS = MIN_POSITIONS
ENABLED = True


def usable(x, w, stride, padding, dilation, groups):
    """A direct stride-1 convolution (conv_simd.direct_positions) with planes under MAX_POSITIONS."""
    return ENABLED and 0 < direct_positions(x, w, stride, padding, dilation, groups) < MAX_POSITIONS


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _tiles(out, grid, packed, offsets, starts, b, has_bias, zero):
    """out (N, K, OH, OW) (+ b) from the flat padded planes grid (N, C*L): output position p reads
    tap t at starts[p] + offsets[t]."""
    n_batch, k_out, oh, ow = out.shape
    blocks, positions = packed.shape[0], oh * ow
    for task in prange(n_batch * blocks):
        n, kb = task // blocks, task % blocks
        planes, weights = grid[n], packed[kb]
        buffer = np.empty((TILE, BLOCK), dtype=out.dtype)
        for p0 in range(0, positions, TILE):
            s0, s1, s2 = starts[p0], starts[min(p0 + 1, positions - 1)], starts[min(p0 + 2, positions - 1)]
            s3, s4 = starts[min(p0 + 3, positions - 1)], starts[min(p0 + 4, positions - 1)]
            s5 = starts[min(p0 + 5, positions - 1)]
            a00 = a01 = a10 = a11 = a20 = a21 = vsplat(zero)
            a30 = a31 = a40 = a41 = a50 = a51 = vsplat(zero)
            for t in range(offsets.shape[0]):
                o = offsets[t]
                w0, w1 = vload(weights, t * BLOCK), vload(weights, t * BLOCK + LANES)
                v = vbroadcast(planes, s0 + o)
                a00, a01 = vfma(v, w0, a00), vfma(v, w1, a01)
                v = vbroadcast(planes, s1 + o)
                a10, a11 = vfma(v, w0, a10), vfma(v, w1, a11)
                v = vbroadcast(planes, s2 + o)
                a20, a21 = vfma(v, w0, a20), vfma(v, w1, a21)
                v = vbroadcast(planes, s3 + o)
                a30, a31 = vfma(v, w0, a30), vfma(v, w1, a31)
                v = vbroadcast(planes, s4 + o)
                a40, a41 = vfma(v, w0, a40), vfma(v, w1, a41)
                v = vbroadcast(planes, s5 + o)
                a50, a51 = vfma(v, w0, a50), vfma(v, w1, a51)
            vstore(buffer[0], 0, a00), vstore(buffer[0], LANES, a01)
            vstore(buffer[1], 0, a10), vstore(buffer[1], LANES, a11)
            vstore(buffer[2], 0, a20), vstore(buffer[2], LANES, a21)
            vstore(buffer[3], 0, a30), vstore(buffer[3], LANES, a31)
            vstore(buffer[4], 0, a40), vstore(buffer[4], LANES, a41)
            vstore(buffer[5], 0, a50), vstore(buffer[5], LANES, a51)
            for r in range(min(TILE, positions - p0)):
                oy, ox = (p0 + r) // ow, (p0 + r) % ow
                for lane in range(min(BLOCK, k_out - kb * BLOCK)):
                    k = kb * BLOCK + lane
                    out[n, k, oy, ox] = buffer[r, lane] + (b[k] if has_bias else zero)


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _weight_grad(dw, dy_pixels, grid, starts, wp, zero):
    """dw (K, C, KH, KW) += sum over samples and positions of dy_pixels (N, P, K') (pixel-major,
    zero past K) times the input pixels each tap reads in grid (N, C, L).

    A task is WGRAD_CHANNELS input channels x WGRAD_BLOCK output channels. Samples are the outer
    loop, so one sample's dy rows and input planes stay in L1 while every tap reads them; the 12
    accumulators of a pass (3 taps of a row x 4 vectors) wait in ``acc`` between passes, and every
    ``group`` samples their float32 sums go into float64."""
    k_out, channels, kh, kw = dw.shape
    n_batch, positions, k_padded = dy_pixels.shape
    blocks, cblocks, jblocks = k_padded // WGRAD_BLOCK, -(-channels // WGRAD_CHANNELS), -(-kw // 3)
    # About 256 products per lane in float32 before they go into float64, as a blocked GEMM sums.
    group = max(1, GROUP_PRODUCTS // positions)
    for task in prange(cblocks * blocks):
        cb, kb = task // blocks, task % blocks
        c0, c1, k0 = cb * WGRAD_CHANNELS, min(cb * WGRAD_CHANNELS + WGRAD_CHANNELS, channels), kb * WGRAD_BLOCK
        total = np.zeros((WGRAD_CHANNELS, kh, kw, WGRAD_BLOCK))
        acc = np.empty((WGRAD_CHANNELS, kh, jblocks, 3 * WGRAD_BLOCK), dtype=dy_pixels.dtype)
        for n0 in range(0, n_batch, group):
            acc[:] = 0
            for n in range(n0, min(n0 + group, n_batch)):
                dy = dy_pixels[n].reshape(-1)
                for c in range(c0, c1):
                    plane = grid[n, c]
                    for i in range(kh):
                        for jb in range(jblocks):
                            a = acc[c - c0, i, jb]
                            a00, a01, a02, a03 = vload(a, 0), vload(a, LANES), vload(a, 2 * LANES), vload(a, 3 * LANES)
                            a10, a11, a12, a13 = (
                                vload(a, 4 * LANES),
                                vload(a, 5 * LANES),
                                vload(a, 6 * LANES),
                                vload(a, 7 * LANES),
                            )
                            a20, a21, a22, a23 = (
                                vload(a, 8 * LANES),
                                vload(a, 9 * LANES),
                                vload(a, 10 * LANES),
                                vload(a, 11 * LANES),
                            )
                            shift = i * wp + 3 * jb
                            for p in range(positions):
                                # Three broadcasts, then one dy vector at a time: 12 accumulators,
                                # 3 broadcasts and 1 dy vector fill the 16 ymm registers exactly.
                                at, row = starts[p] + shift, p * k_padded + k0
                                v0, v1, v2 = vbroadcast(plane, at), vbroadcast(plane, at + 1), vbroadcast(plane, at + 2)
                                d = vload(dy, row)
                                a00, a10, a20 = vfma(v0, d, a00), vfma(v1, d, a10), vfma(v2, d, a20)
                                d = vload(dy, row + LANES)
                                a01, a11, a21 = vfma(v0, d, a01), vfma(v1, d, a11), vfma(v2, d, a21)
                                d = vload(dy, row + 2 * LANES)
                                a02, a12, a22 = vfma(v0, d, a02), vfma(v1, d, a12), vfma(v2, d, a22)
                                d = vload(dy, row + 3 * LANES)
                                a03, a13, a23 = vfma(v0, d, a03), vfma(v1, d, a13), vfma(v2, d, a23)
                            vstore(a, 0, a00), vstore(a, LANES, a01)
                            vstore(a, 2 * LANES, a02), vstore(a, 3 * LANES, a03)
                            vstore(a, 4 * LANES, a10), vstore(a, 5 * LANES, a11)
                            vstore(a, 6 * LANES, a12), vstore(a, 7 * LANES, a13)
                            vstore(a, 8 * LANES, a20), vstore(a, 9 * LANES, a21)
                            vstore(a, 10 * LANES, a22), vstore(a, 11 * LANES, a23)
            # Each group's sums go into float64: long reductions keep their precision.
            for c in range(c1 - c0):
                for i in range(kh):
                    for jb in range(jblocks):
                        for dj in range(min(3, kw - 3 * jb)):
                            for r in range(WGRAD_BLOCK):
                                total[c, i, 3 * jb + dj, r] += acc[c, i, jb, dj * WGRAD_BLOCK + r]
        for c in range(c0, c1):
            for r in range(min(WGRAD_BLOCK, k_out - k0)):
                for i in range(kh):
                    for j in range(kw):
                        dw[k0 + r, c, i, j] += total[c - c0, i, j, r]


@njit(parallel=True, cache=True)
def _to_pixels(dy_pixels, dy):
    """dy_pixels (N, P, K') <- dy (N, K, OH, OW) pixel-major, zeros past K."""
    n_batch, k_out, oh, ow = dy.shape
    for n in prange(n_batch):
        dy_pixels[n] = 0
        for k in range(k_out):
            for oy in range(oh):
                for ox in range(ow):
                    dy_pixels[n, oy * ow + ox, k] = dy[n, k, oy, ox]


def _grid(x, padding, kh, kw, name):
    """(flat padded planes (N, C, L) in workspace ``name``, padded width wp, starts (P,): where each
    output position's taps begin)."""
    n_batch, channels, height, width = x.shape
    wp = width + 2 * padding[1]
    oh = conv2d_output_size(height, kh, 1, padding[0], 1)
    ow = conv2d_output_size(width, kw, 1, padding[1], 1)
    # A vector of slack: conv_simd's grid writer and any reader may touch one past the last row.
    grid = scratch(name, (n_batch, channels, (height + 2 * padding[0]) * wp + LANES), x.dtype)
    _to_flat_grid(grid, x, padding[0], padding[1], wp)
    starts = (np.arange(oh)[:, None] * wp + np.arange(ow)).ravel()
    return grid, wp, starts


def _convolve(out, x, w, b, padding, transpose_flip):
    n_batch, channels = x.shape[0], x.shape[1]
    kh, kw = w.shape[2], w.shape[3]
    grid, wp, starts = _grid(x, padding, kh, kw, "conv_chanvec.x")
    length = grid.shape[2]
    offsets = (np.arange(channels)[:, None, None] * length + np.arange(kh)[:, None] * wp + np.arange(kw)).ravel()
    # conv_simd's packing with tiles of BLOCK channels: (K/BLOCK, C, KH, KW, BLOCK), one flat row
    # of weights per block for the tiles.
    packed = scratch("conv_chanvec.w", (-(-out.shape[1] // BLOCK), channels, kh, kw, BLOCK), x.dtype)
    _pack_weights(packed, w, transpose_flip)
    packed = packed.reshape(packed.shape[0], -1)
    has_bias = b is not None
    bias = b if has_bias else out.reshape(-1)[:1]
    flat = grid.reshape(n_batch, channels * length)
    _tiles(out, flat, packed, offsets, starts, bias, has_bias, x.dtype.type(0))


def conv2d_forward(out, x, w, b, padding):
    """out (N, K, OH, OW) = conv(x, w) + b, stride 1 (see ``usable``)."""
    _convolve(out, x, w, b, padding, False)


def conv2d_backward(dx, dw, db, dy, x, w, padding):
    """The gradients of conv2d_forward: dx overwritten, dw and db accumulated; None skips one."""
    kh, kw = w.shape[2], w.shape[3]
    if db is not None:
        bias_grad(db, dy)
    if dw is not None:
        grid, wp, starts = _grid(x, padding, kh, kw, "conv_chanvec.x")
        n_batch, k_out, oh, ow = dy.shape
        dy_pixels = scratch("conv_chanvec.dy", (n_batch, oh * ow, -(-k_out // WGRAD_BLOCK) * WGRAD_BLOCK), x.dtype)
        _to_pixels(dy_pixels, dy)
        _weight_grad(dw, dy_pixels, grid, starts, wp, x.dtype.type(0))
    if dx is not None:
        _convolve(dx, dy, w, None, (kh - 1 - padding[0], kw - 1 - padding[1]), True)


__all__ = ["conv2d_backward", "conv2d_forward", "usable"]
