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

import functools

import numba
import numpy as np
from numba import njit, prange

from ..shapes import conv2d_output_size
from ..workspace import scratch
from .conv_grid import bias_grad, pack_weights, to_flat_grid, to_grid_plane
from .conv_simd_weights import weight_grad
from .simd import LANES, vbroadcast, vfma, vload, vsplat, vstore

TILE_CHANNELS = 4
TILE_POSITIONS = 3 * LANES
ENABLED = True  # tests switch it off to compare with the other paths
# Below this many output positions per plane, the wide grid's junk columns and the rounding to
# whole tiles waste too much (an 8x8 plane with padding 1: a third of the work): conv_chanvec.py
# takes those planes (benchmarks/NOTES.md, entries 32 and 37). Below twice as many it takes the
# layers whose channel counts fill its blocks of 2 LANES channels too (ResNet's 14x14 stage,
# 32 channels: all three passes 1.1x faster there; entry 45).
MIN_POSITIONS = 100
CHANVEC_BLOCK = 2 * LANES


def direct_positions(x, w, stride, padding, dilation, groups):
    """The output positions per plane when the layer is a direct stride-1 convolution (stride 1,
    dilation 1, groups 1, padding inside the kernel, so that the input gradient is a convolution
    of the same kind), else 0."""
    kh, kw = w.shape[2], w.shape[3]
    if not (
        tuple(stride) == (1, 1)
        and tuple(dilation) == (1, 1)
        and groups == 1
        and 0 <= padding[0] <= kh - 1
        and 0 <= padding[1] <= kw - 1
    ):
        return 0
    oh = conv2d_output_size(x.shape[2], kh, 1, padding[0], 1)
    ow = conv2d_output_size(x.shape[3], kw, 1, padding[1], 1)
    return max(oh, 0) * max(ow, 0)


def usable(x, w, stride, padding, dilation, groups):
    """A direct stride-1 convolution with output planes of at least MIN_POSITIONS positions (2
    MIN_POSITIONS when both channel counts are multiples of CHANVEC_BLOCK)."""
    positions = direct_positions(x, w, stride, padding, dilation, groups)
    whole_blocks = x.shape[1] % CHANVEC_BLOCK == 0 and w.shape[0] % CHANVEC_BLOCK == 0
    return ENABLED and positions >= (2 * MIN_POSITIONS if whole_blocks else MIN_POSITIONS)


@njit(fastmath=True, boundscheck=False, cache=True)
def _tile_block(y, planes, weights, offsets, zero):
    """y (4, Lq) = the wide-grid convolution of one sample's flat planes (C * L,) with one block of
    4 output channels' weights (T * 4,), T = C * KH * KW taps, where tap t reads the planes from
    ``offsets[t]`` = c * L + i * wp + j on. One loop over the taps rather than three nested ones:
    the loop body is then only the 7 loads and 12 FMAs. Lq is a multiple of TILE_POSITIONS, and L
    covers every tap of the last tile."""
    lq = y.shape[1]
    y0, y1, y2, y3 = y[0], y[1], y[2], y[3]
    for q0 in range(0, lq, TILE_POSITIONS):
        a00 = a01 = a02 = a10 = a11 = a12 = vsplat(zero)
        a20 = a21 = a22 = a30 = a31 = a32 = vsplat(zero)
        for t in range(offsets.shape[0]):
            at = q0 + offsets[t]
            x0, x1, x2 = vload(planes, at), vload(planes, at + LANES), vload(planes, at + 2 * LANES)
            s = vbroadcast(weights, 4 * t)
            a00, a01, a02 = vfma(s, x0, a00), vfma(s, x1, a01), vfma(s, x2, a02)
            s = vbroadcast(weights, 4 * t + 1)
            a10, a11, a12 = vfma(s, x0, a10), vfma(s, x1, a11), vfma(s, x2, a12)
            s = vbroadcast(weights, 4 * t + 2)
            a20, a21, a22 = vfma(s, x0, a20), vfma(s, x1, a21), vfma(s, x2, a22)
            s = vbroadcast(weights, 4 * t + 3)
            a30, a31, a32 = vfma(s, x0, a30), vfma(s, x1, a31), vfma(s, x2, a32)
        vstore(y0, q0, a00), vstore(y0, q0 + LANES, a01), vstore(y0, q0 + 2 * LANES, a02)
        vstore(y1, q0, a10), vstore(y1, q0 + LANES, a11), vstore(y1, q0 + 2 * LANES, a12)
        vstore(y2, q0, a20), vstore(y2, q0 + LANES, a21), vstore(y2, q0 + 2 * LANES, a22)
        vstore(y3, q0, a30), vstore(y3, q0 + LANES, a31), vstore(y3, q0 + 2 * LANES, a32)


@njit(fastmath=True, boundscheck=False, cache=True)
def _tile_pair(y, planes, weights, offsets, zero):
    """``_tile_block`` for blocks of 2 output channels (y (2, Lq), weights (T * 2,)): 6 vectors of
    positions x 2 channels, also 12 accumulators. Layers whose channel count is not a multiple of
    4 (LeNet's 6) so waste no channels; Lq is a multiple of 2 TILE_POSITIONS."""
    lq = y.shape[1]
    y0, y1 = y[0], y[1]
    for q0 in range(0, lq, 2 * TILE_POSITIONS):
        a00 = a01 = a02 = a03 = a04 = a05 = vsplat(zero)
        a10 = a11 = a12 = a13 = a14 = a15 = vsplat(zero)
        for t in range(offsets.shape[0]):
            at = q0 + offsets[t]
            s0, s1 = vbroadcast(weights, 2 * t), vbroadcast(weights, 2 * t + 1)
            x = vload(planes, at)
            a00, a10 = vfma(s0, x, a00), vfma(s1, x, a10)
            x = vload(planes, at + LANES)
            a01, a11 = vfma(s0, x, a01), vfma(s1, x, a11)
            x = vload(planes, at + 2 * LANES)
            a02, a12 = vfma(s0, x, a02), vfma(s1, x, a12)
            x = vload(planes, at + 3 * LANES)
            a03, a13 = vfma(s0, x, a03), vfma(s1, x, a13)
            x = vload(planes, at + 4 * LANES)
            a04, a14 = vfma(s0, x, a04), vfma(s1, x, a14)
            x = vload(planes, at + 5 * LANES)
            a05, a15 = vfma(s0, x, a05), vfma(s1, x, a15)
        vstore(y0, q0, a00), vstore(y0, q0 + LANES, a01), vstore(y0, q0 + 2 * LANES, a02)
        vstore(y0, q0 + 3 * LANES, a03), vstore(y0, q0 + 4 * LANES, a04), vstore(y0, q0 + 5 * LANES, a05)
        vstore(y1, q0, a10), vstore(y1, q0 + LANES, a11), vstore(y1, q0 + 2 * LANES, a12)
        vstore(y1, q0 + 3 * LANES, a13), vstore(y1, q0 + 4 * LANES, a14), vstore(y1, q0 + 5 * LANES, a15)


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _convolve_samples(out, src, grid, top, left, packed, offsets, b, has_bias, wp, zero, planes_buf, y_buf):
    """out (N, K, OH, OW) (+ b (K,)) = the convolution, sample by sample, of either ``src`` (N, C,
    H, W), put on a flat grid (zero border ``top``/``left``) in the worker's ``planes_buf`` (W, C,
    L), or, when ``src`` is empty, the flat grid ``grid`` (N, >= C, L) as it is. Each sample's tiles
    go through the worker's ``y_buf`` (W, B, Lq) straight into ``out``: one sample's planes and
    tiles stay in the core's cache, and no array of the batch's size is written in between. The
    packed weights (K/B, C, KH, KW, B) come in blocks of B = 4 or 2 output channels."""
    n_batch, k_out, oh, ow = out.shape
    workers, channels, tile = planes_buf.shape[0], packed.shape[1], packed.shape[4]
    own_grid = src.shape[0] > 0
    for worker in prange(workers):
        planes, y = planes_buf[worker], y_buf[worker]
        for n in range(worker * n_batch // workers, (worker + 1) * n_batch // workers):
            if own_grid:
                for c in range(channels):
                    to_grid_plane(planes[c], src[n, c], top, left, wp)
            source = (planes if own_grid else grid[n]).reshape(-1)
            for kb in range(packed.shape[0]):
                if tile == 4:
                    _tile_block(y, source, packed[kb].reshape(-1), offsets, zero)
                else:
                    _tile_pair(y, source, packed[kb].reshape(-1), offsets, zero)
                for r in range(min(tile, k_out - tile * kb)):
                    k = tile * kb + r
                    bias = b[k] if has_bias else zero
                    tiles = y[r]
                    for oy in range(oh):
                        # Row views indexed by range(): these copies vectorise.
                        dst, row = out[n, k, oy], tiles[oy * wp : oy * wp + ow]
                        for ox in range(ow):
                            dst[ox] = row[ox] + bias


def _tile_channels(k_out):
    """Output channels per tile: 4, or 2 where 4 would leave channels of the last block empty."""
    return TILE_CHANNELS if k_out % TILE_CHANNELS == 0 else 2


def _grid_sizes(height, width, kh, kw, padding, tile_positions=2 * TILE_POSITIONS):
    """(wp, lq, length): the padded width, the tiled positions (a multiple of ``tile_positions``,
    and of LANES) and the length of a flat plane that every tap of every tile may read."""
    wp = width + 2 * padding[1]
    oh = conv2d_output_size(height, kh, 1, padding[0], 1)
    lq = -(-oh * wp // tile_positions) * tile_positions
    # The last tile reads up to lq - 1 + (kh - 1) wp + kw - 1 + a vector past it.
    return wp, lq, max((height + 2 * padding[0]) * wp, lq + (kh - 1) * wp + kw + LANES)


@functools.lru_cache(maxsize=64)
def _taps(size, flip):
    """The kernel taps 0..size-1 in order, or reversed to flip the kernel."""
    return np.arange(size - 1, -1, -1) if flip else np.arange(size)


@functools.lru_cache(maxsize=64)
def _tap_offsets(channels, length, kh, kw, wp):
    """Where tap (c, i, j) reads a sample's flat planes (C, length) of rows of width wp, in the
    order of the packed weights (cached: a warm step builds no arrays)."""
    return (np.arange(channels)[:, None, None] * length + np.arange(kh)[:, None] * wp + np.arange(kw)).ravel()


def _convolve(out, x, grid, w, b, padding, transpose_flip):
    """out (N, K, OH, OW) = the stride-1 convolution of x (N, C, H, W) with w (+ b), or of its
    flat grid ``grid`` when given (then x only gives the sizes): the kernel of both passes."""
    n_batch, channels, height, width = x.shape
    kh, kw = w.shape[2], w.shape[3]
    tile = _tile_channels(out.shape[1])
    wp, lq, length = _grid_sizes(height, width, kh, kw, padding, 4 // tile * TILE_POSITIONS)
    packed = scratch("conv_simd.w", (-(-out.shape[1] // tile), channels, kh, kw, tile), x.dtype)
    pack_weights(packed, w, 1, _taps(kh, transpose_flip), _taps(kw, transpose_flip), transpose_flip)
    workers = max(1, min(numba.get_num_threads(), n_batch))
    planes_buf = scratch("conv_simd.planes", (workers, channels, length), x.dtype)
    y_buf = scratch("conv_simd.tiles", (workers, tile, lq), x.dtype)
    src, grid = (x, planes_buf) if grid is None else (x[:0], grid)
    has_bias = b is not None
    bias = b if has_bias else out.reshape(-1)[:1]
    zero = x.dtype.type(0)
    offsets = _tap_offsets(channels, grid.shape[2], kh, kw, wp)
    _convolve_samples(
        out, src, grid, padding[0], padding[1], packed, offsets, bias, has_bias, wp, zero, planes_buf, y_buf
    )


def conv2d_forward(out, x, w, b, padding):
    """out (N, K, OH, OW) = conv(x, w) + b, stride 1 (see ``usable``)."""
    _convolve(out, x, None, w, b, padding, False)


def conv2d_backward(dx, dw, db, dy, x, w, padding):
    """The gradients of conv2d_forward: dx overwritten, dw and db accumulated; None skips one.

    dy goes on one flat grid, padded for the input gradient (a convolution of dy padded by KH-1-ph,
    KW-1-pw). With "same" padding that grid has the input's width, and the weight gradient reads
    dy from the same grid, shifted past its border: one copy of dy serves both."""
    n_batch, channels, height, width = x.shape
    k_out, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    flipped = (kh - 1 - padding[0], kw - 1 - padding[1])
    wq, _, length = _grid_sizes(oh, ow, kh, kw, flipped)
    wp = width + 2 * padding[1]
    shared = wq == wp
    dy_rows = -(-oh * wp // LANES) * LANES  # the positions the weight gradient sums over
    offset = flipped[0] * wq + flipped[1] if shared else 0
    length = max(length, offset + dy_rows)
    dy_grid = scratch("conv_simd.dy", (n_batch, -(-k_out // TILE_CHANNELS) * TILE_CHANNELS, length), x.dtype)
    if db is not None:
        bias_grad(db, dy)
    if dw is not None:
        # Taps read up to (kh - 1) wp + kw + 2 past the last position: the padded plane covers them.
        x_length = max((height + 2 * padding[0]) * wp, dy_rows + (kh - 1) * wp + kw + 2)
        xp = scratch("conv_simd.x", (n_batch, channels, x_length), x.dtype)
        to_flat_grid(xp, x, padding[0], padding[1], wp)
        # Shared: dy padded for the input gradient; else dy at the input's width, zeros in the
        # junk columns (the input gradient then lays it out again below).
        to_flat_grid(dy_grid, dy, *(flipped if shared else (0, 0)), wq if shared else wp)
        weight_grad(dw, dy_grid, offset, dy_rows, xp, wp, x.dtype.type(0))
    if dx is not None:
        if dw is None or not shared:
            to_flat_grid(dy_grid, dy, flipped[0], flipped[1], wq)
        _convolve(dx, dy, dy_grid, w, None, flipped, True)


__all__ = ["conv2d_backward", "conv2d_forward", "direct_positions", "usable"]
