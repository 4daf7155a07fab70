"""Direct stride-1 convolution vectorised over output positions (the table's "direct_positions").

Each input plane is zero-padded and flattened (width Wp = W + 2 pw), and the output is computed
on the same "wide" grid: output position q = oy * Wp + ox, where the columns ox >= OW are junk
and dropped at the end. Tap (i, j) of every output position then reads the input at the constant
offset i * Wp + j, so a run of consecutive outputs reads a run of consecutive inputs: one vector
load. A tile (conv_tiles.positions_4x3v) is 3 vectors of consecutive positions x 4 output
channels, 12 accumulators kept in registers through the whole reduction over input channels and
taps; layers whose channel count is not a multiple of 4 take tiles of 6 vectors x 2 channels.

The input gradient is the same kernel: the forward convolution of dy, padded by KH-1-ph and
KW-1-pw, with the weights transposed (K <-> C) and flipped. The weight gradient is in
direct_positions_weight_grad.py.

Shapes: x (N, C, H, W), w (K, C, KH, KW), b (K,) or None, out (N, K, OH, OW); stride 1,
dilation 1, groups 1, padding at most KH-1 / KW-1.
"""

import functools

import numpy as np
from numba import njit, prange

from ...shapes import conv2d_output_size
from ...workspace import scratch, worker_scratch
from ..conv_tiles import positions_2x6v, positions_4x3v
from ..simd import LANES
from .bias import bias_grad
from .direct_positions_weight_grad import weight_grad
from .grids import pack_weights, tap_order, to_flat_grid, to_grid_plane

TILE_CHANNELS = 4
TILE_POSITIONS = 3 * LANES


def accepts(g):
    """None when the layer is a direct stride-1 convolution (padding inside the kernel, so that the
    input gradient is a convolution of the same kind), else why not."""
    if g.stride != (1, 1):
        return f"stride {g.stride}: it needs stride 1"
    if g.dilation != (1, 1):
        return f"dilation {g.dilation}: it needs dilation 1"
    if g.groups != 1:
        return f"groups {g.groups}: it needs groups 1"
    if not (0 <= g.padding[0] <= g.kh - 1 and 0 <= g.padding[1] <= g.kw - 1):
        return f"padding {g.padding} past the kernel ({g.kh}x{g.kw}): its input gradient would need negative padding"
    if g.positions < 1:
        return "no output positions"
    return None


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
                    positions_4x3v(y, source, packed[kb].reshape(-1), offsets, zero)
                else:
                    positions_2x6v(y, source, packed[kb].reshape(-1), offsets, zero)
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
    packed = scratch("direct_positions.w", (-(-out.shape[1] // tile), channels, kh, kw, tile), x.dtype)
    pack_weights(packed, w, 1, tap_order(kh, transpose_flip), tap_order(kw, transpose_flip), transpose_flip)
    workers, planes_buf = worker_scratch("direct_positions.planes", n_batch, (channels, length), x.dtype)
    y_buf = scratch("direct_positions.tiles", (workers, tile, lq), x.dtype)
    src, grid = (x, planes_buf) if grid is None else (x[:0], grid)
    has_bias = b is not None
    bias = b if has_bias else out.reshape(-1)[:1]
    zero = x.dtype.type(0)
    offsets = _tap_offsets(channels, grid.shape[2], kh, kw, wp)
    _convolve_samples(
        out, src, grid, padding[0], padding[1], packed, offsets, bias, has_bias, wp, zero, planes_buf, y_buf
    )


def forward(out, x, w, b, g):
    """out (N, K, OH, OW) = conv(x, w) + b, for a geometry ``g`` it accepts."""
    _convolve(out, x, None, w, b, g.padding, False)


def backward(dx, dw, db, dy, x, w, g):
    """The gradients of forward: dx overwritten, dw and db accumulated; None skips one.

    dy goes on one flat grid, padded for the input gradient (a convolution of dy padded by KH-1-ph,
    KW-1-pw). With "same" padding that grid has the input's width, and the weight gradient reads
    dy from the same grid, shifted past its border: one copy of dy serves both."""
    n_batch, channels, height, width = x.shape
    k_out, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    kh, kw, padding = w.shape[2], w.shape[3], g.padding
    flipped = (kh - 1 - padding[0], kw - 1 - padding[1])
    wq, _, length = _grid_sizes(oh, ow, kh, kw, flipped)
    wp = width + 2 * padding[1]
    shared = wq == wp
    dy_rows = -(-oh * wp // LANES) * LANES  # the positions the weight gradient sums over
    offset = flipped[0] * wq + flipped[1] if shared else 0
    length = max(length, offset + dy_rows)
    dy_grid = scratch("direct_positions.dy", (n_batch, -(-k_out // TILE_CHANNELS) * TILE_CHANNELS, length), x.dtype)
    if db is not None:
        bias_grad(db, dy)
    if dw is not None:
        # Taps read up to (kh - 1) wp + kw + 2 past the last position: the padded plane covers them.
        x_length = max((height + 2 * padding[0]) * wp, dy_rows + (kh - 1) * wp + kw + 2)
        xp = scratch("direct_positions.x", (n_batch, channels, x_length), x.dtype)
        to_flat_grid(xp, x, padding[0], padding[1], wp)
        # Shared: dy padded for the input gradient; else dy at the input's width, zeros in the
        # junk columns (the input gradient then lays it out again below).
        to_flat_grid(dy_grid, dy, *(flipped if shared else (0, 0)), wq if shared else wp)
        weight_grad(dw, dy_grid, offset, dy_rows, xp, wp, x.dtype.type(0))
    if dx is not None:
        if dw is None or not shared:
            to_flat_grid(dy_grid, dy, flipped[0], flipped[1], wq)
        _convolve(dx, dy, dy_grid, w, None, flipped, True)


__all__ = ["accepts", "backward", "forward"]
