"""Direct stride-1 convolution vectorised over samples (the table's "direct_samples").

Vectorised over output positions (direct_positions.py), a small plane wastes lanes: LeNet-5's
conv2 (5x5 on 14x14, 10x10 outputs) computes rows of the padded width and whole tiles of 3
vectors, about half of it junk. Here every vector holds one pixel of LANES samples instead, so
every lane of every tile is a wanted output whatever the plane's size; only a batch that is not a
multiple of LANES pads its last block.

The batch is copied into blocks of LANES samples laid (C, R, Wg, LANES) (sample_tiles.py): planes
zero-padded, R = H + 2 ph + 1 rows (a spare row of zeros for the weight gradient's last taps) of
Wg = W + 2 pw pixels. The output positions are listed one by one, so a register tile may span two
rows and a plane of any width fills whole tiles. The input gradient is the same kernel on dy
padded by KH-1-ph, KW-1-pw, with the weights transposed (K <-> C) and flipped; the weight gradient
reduces over the positions of each block in registers and across blocks in float64.

Shapes: x (N, C, H, W), w (K, C, KH, KW), b (K,) or None, out (N, K, OH, OW); stride 1,
dilation 1, groups 1, padding at most KH-1 / KW-1.
"""

import functools

import numpy as np
from numba import njit, prange

from ...workspace import scratch, worker_scratch
from ..sample_tiles import samples_2x6, samples_4x3, samples_dot_4x3
from ..simd import LANES, vload, vsum
from .bias import bias_grad
from .direct_positions import accepts as _accepts_stride_1
from .direct_samples_blocks import fill_block, row_buffers, write_block
from .grids import pack_weights, tap_order

TILE_CHANNELS = 4
# Positions are padded to a multiple of both tiles' widths (3 and 6).
TILE_POSITIONS = 6


def accepts(g):
    """None when the layer is a direct stride-1 convolution whose input gradient is one too (as
    direct_positions), else why not."""
    return _accepts_stride_1(g)


@njit(inline="always")
def _chunk(width):
    """Positions per chunk of _tiles: two rows of outputs, rounded up to a multiple of 6."""
    return -(-2 * width // TILE_POSITIONS) * TILE_POSITIONS


@njit(inline="always")
def _tiles(y, planes, packed, bases, offsets, spans, chunk, zero):
    """y (K/B * B, P' LANES) <- every output position of one block of samples (flat planes) for
    every block of B = 4 or 2 output channels of the packed weights (K/B, KH, C, KW, B), each tile
    over the taps its positions' ``spans`` (P', 2) give. Positions go by ``chunk`` (a multiple of
    6: a row or two), every block of channels over one chunk before the next: the input rows a
    chunk reads stay in cache, where a whole block of samples of a large layer would not."""
    tile = packed.shape[4]
    for q0 in range(0, bases.shape[0], chunk):
        q1 = min(q0 + chunk, bases.shape[0])
        for kb in range(packed.shape[0]):
            weights = packed[kb].reshape(-1)
            rows = y[tile * kb : tile * kb + tile]
            if tile == 4:
                for p0 in range(q0, q1, 3):
                    # A tile's positions descend the rows: its last starts first, its first ends last.
                    t0, t1 = spans[p0 + 2, 0], spans[p0, 1]
                    samples_4x3(rows, p0 * LANES, planes, weights, offsets, bases, p0, t0, t1, zero)
            else:
                for p0 in range(q0, q1, 6):
                    t0, t1 = spans[p0 + 5, 0], spans[p0, 1]
                    samples_2x6(rows, p0 * LANES, planes, weights, offsets, bases, p0, t0, t1, zero)


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _forward_blocks(out, src, top, left, packed, bases, offsets, spans, b, has_bias, zero, bufs):
    """out (N, K, OH, OW) (+ b (K,)) = the convolution of src (N, C, H, W), padded by top / left,
    with the packed weights. A worker takes whole blocks of samples, each laid in its planes_buf
    (C, R, Wg, LANES) and its tiles in its y_buf: one block's data stays in the core's cache.
    bufs = (planes_buf, y_buf, tmp_buf), one row per worker."""
    planes_buf, y_buf, tmp_buf = bufs
    workers, nblocks = y_buf.shape[0], -(-out.shape[0] // LANES)
    for worker in prange(workers):
        planes, y, tmp = planes_buf[worker], y_buf[worker], tmp_buf[worker]
        start = worker * nblocks // workers
        for nb in range(start, (worker + 1) * nblocks // workers):
            fill_block(planes, src, nb, nb == start, top, left, tmp)
            _tiles(y, planes.reshape(-1), packed, bases, offsets, spans, _chunk(out.shape[3]), zero)
            write_block(out, y, nb, b, has_bias, zero, tmp)


@njit(inline="always")
def _weight_grad_block(totals, acc, planes, d_planes, d_at, oh, ow, chunk_rows):
    """totals (K4/4, C, 4, KH, J) float64 = one block's weight gradient: dy in d_planes (K4, Rq, Wq,
    LANES) from ``d_at`` on, x in planes (C, R, Wg, LANES). 4 output channels x 3 taps of a row at
    a time (J = 3 ceil(KW / 3); taps past KW read the spare row and are dropped later), over
    ``chunk_rows`` rows of outputs at a time, whose rows of dy and x stay in L1 while every tap
    reads them; the float32 sums wait in acc (KH, J / 3, 12 LANES) and go into float64 per block."""
    kh, wg, wq = totals.shape[3], planes.shape[2], d_planes.shape[2]
    for kb in range(totals.shape[0]):
        d0, d1 = d_planes[4 * kb].reshape(-1), d_planes[4 * kb + 1].reshape(-1)
        d2, d3 = d_planes[4 * kb + 2].reshape(-1), d_planes[4 * kb + 3].reshape(-1)
        for c in range(totals.shape[1]):
            plane = planes[c].reshape(-1)
            acc[:] = 0
            for oy0 in range(0, oh, chunk_rows):
                oy1 = min(oy0 + chunk_rows, oh)
                for i in range(kh):
                    for jb in range(acc.shape[1]):
                        x_at = (i * wg + 3 * jb) * LANES
                        samples_dot_4x3(acc[i, jb], d0, d1, d2, d3, d_at, wq, plane, x_at, wg, oy0, oy1, ow)
            total = totals[kb, c]
            for i in range(kh):
                for jb in range(acc.shape[1]):
                    for r in range(4):
                        for dj in range(3):
                            total[r, i, 3 * jb + dj] = vsum(vload(acc[i, jb], (3 * r + dj) * LANES))


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _backward_blocks(dx, partials, x, dy, pads, chunk_rows, packed, bases, offsets, spans, zero, bufs):
    """Per block of samples, in one pass over the batch: dy laid in the worker's dy_buf (K4, Rq,
    Wq, LANES) padded by pads[2:] (pads = (ph, pw, dy's top, dy's left): KH-1-ph, KW-1-pw for the
    input gradient, 0, 0 without it); when ``partials`` (NB, K4/4, C, 4, KH, J) float64 is not
    empty, the block's weight gradient into partials[nb] (x laid in x_buf (C, R, Wg, LANES),
    _weight_grad_block); when dx (N, C, H, W) is not empty, the input gradient (the tiles, through
    y_buf, of dy with the packed flipped weights). bufs = (x_buf, dy_buf, y_buf, acc_buf), one row
    per worker."""
    x_buf, dy_buf, y_buf, acc_buf, tmp_buf = bufs
    workers, nblocks = y_buf.shape[0], -(-dy.shape[0] // LANES)
    d_at = (pads[2] * dy_buf.shape[3] + pads[3]) * LANES
    oh, ow = dy.shape[2], dy.shape[3]
    for worker in prange(workers):
        planes, d_planes, y, tmp = x_buf[worker], dy_buf[worker], y_buf[worker], tmp_buf[worker]
        start = worker * nblocks // workers
        for nb in range(start, (worker + 1) * nblocks // workers):
            fill_block(d_planes, dy, nb, nb == start, pads[2], pads[3], tmp)
            if partials.shape[0] > 0:
                fill_block(planes, x, nb, nb == start, pads[0], pads[1], tmp)
                _weight_grad_block(partials[nb], acc_buf[worker], planes, d_planes, d_at, oh, ow, chunk_rows)
            if dx.shape[0] > 0:
                _tiles(y, d_planes.reshape(-1), packed, bases, offsets, spans, _chunk(dx.shape[3]), zero)
                write_block(dx, y, nb, dx[0, 0, 0], False, zero, tmp)  # (no bias: any row does)


@njit(cache=True)
def _sum_blocks(dw, partials):
    """dw (K, C, KH, KW) += partials (NB, K4/4, C, 4, KH, J) summed over the blocks in their order
    (so the result does not depend on which worker ran which block); taps j >= KW dropped."""
    k_out, channels, kh, kw = dw.shape
    for k in range(k_out):
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    total = 0.0
                    for nb in range(partials.shape[0]):
                        total += partials[nb, k // 4, c, k % 4, i, j]
                    dw[k, c, i, j] += total


@functools.lru_cache(maxsize=64)
def _layout(channels, rows, wg, kh, kw, oh, ow, top, height):
    """(bases, offsets, spans) of a convolution over blocks of samples whose planes (``rows`` x
    ``wg``) hold ``height`` rows of pixels from row ``top`` on: where each output position's taps
    start, listed row by row and padded to a multiple of TILE_POSITIONS (repeating the last); where
    tap (i, c, j) is from there, ordered by kernel row; and the taps [t0, t1) of each position
    that can read a pixel (kernel rows on the zero border left out). Cached: a warm step builds no
    arrays."""
    positions = np.arange(oh * ow)
    padded = -(-positions.shape[0] // TILE_POSITIONS) * TILE_POSITIONS
    positions = np.concatenate([positions, np.full(padded - positions.shape[0], positions[-1])])
    oy, ox = positions // ow, positions % ow
    bases = (oy * wg + ox) * LANES
    offsets = (np.arange(kh)[:, None, None] * wg + np.arange(channels)[:, None] * rows * wg + np.arange(kw)).ravel()
    first_row = np.clip(top - oy, 0, kh - 1)  # kernel row i reads grid row oy + i
    end_row = np.maximum(np.clip(top + height - oy, 0, kh), first_row + 1)
    per_row = channels * kw
    spans = np.stack([first_row * per_row, end_row * per_row], axis=1)
    return bases.astype(np.int64), (offsets * LANES).astype(np.int64), spans.astype(np.int64)


def _pack(w, k_out, transpose_flip):
    """The weights packed (K'/B, KH, C', KW, B) in blocks of B = 4 output channels (2 where K' is
    not a multiple of 4), taps ordered as _layout's offsets; transposed and flipped for the input
    gradient."""
    kh, kw = w.shape[2], w.shape[3]
    channels = w.shape[0] if transpose_flip else w.shape[1]
    tile = TILE_CHANNELS if k_out % TILE_CHANNELS == 0 else 2
    packed = scratch("direct_samples.packed", (-(-k_out // tile), channels, kh, kw, tile), w.dtype)
    pack_weights(packed, w, 1, tap_order(kh, transpose_flip), tap_order(kw, transpose_flip), transpose_flip)
    by_rows = scratch("direct_samples.w", (packed.shape[0], kh, channels, kw, tile), w.dtype)
    np.copyto(by_rows, packed.transpose(0, 2, 1, 3, 4))
    return by_rows


@functools.lru_cache(maxsize=64)
def _pads(padding, kh, kw, input_grad):
    """(ph, pw, dy's top, dy's left): the input's padding, and dy's (KH-1-ph, KW-1-pw for the
    input gradient; none for the weight gradient alone)."""
    dy_pads = (kh - 1 - padding[0], kw - 1 - padding[1]) if input_grad else (0, 0)
    return np.array([padding[0], padding[1], *dy_pads], np.int64)


# The rows of dy and x a weight gradient's pass over the taps reads, in bytes (L1 is 32-48 KiB).
WGRAD_CHUNK_BYTES = 24 * 1024


def _chunk_rows(wg, wq, kh, itemsize):
    """Rows of outputs per chunk of the weight gradient: 4 rows of dy and the KH - 1 + rows rows
    of x they meet fit in WGRAD_CHUNK_BYTES."""
    per_row = LANES * itemsize
    return max(1, (WGRAD_CHUNK_BYTES // per_row - (kh - 1) * wg) // (4 * wq + wg))


def _block_shape(src, planes, padding):
    """A block of LANES samples of src (N, S, H, W): (planes, H + 2 ph + 1, W + 2 pw, LANES)."""
    return (planes, src.shape[2] + 2 * padding[0] + 1, src.shape[3] + 2 * padding[1], LANES)


def forward(out, x, w, b, g):
    """out (N, K, OH, OW) = conv(x, w) + b, for a geometry ``g`` it accepts."""
    kh, kw, k_out = w.shape[2], w.shape[3], out.shape[1]
    packed = _pack(w, k_out, False)
    block = _block_shape(x, x.shape[1], g.padding)
    layout = _layout(x.shape[1], block[1], block[2], kh, kw, out.shape[2], out.shape[3], g.padding[0], x.shape[2])
    bases, offsets, spans = layout
    nblocks = -(-x.shape[0] // LANES)
    workers, planes_buf = worker_scratch("direct_samples.x", nblocks, block, x.dtype)
    y_shape = (workers, packed.shape[0] * packed.shape[4], bases.shape[0] * LANES)
    y_buf = scratch("direct_samples.tiles", y_shape, x.dtype)
    has_bias = b is not None
    bias = b if has_bias else out.reshape(-1)[:1]
    zero = x.dtype.type(0)
    bufs = (planes_buf, y_buf, row_buffers(workers, x, out))
    _forward_blocks(out, x, g.padding[0], g.padding[1], packed, bases, offsets, spans, bias, has_bias, zero, bufs)


def backward(dx, dw, db, dy, x, w, g):
    """The gradients of forward: dx overwritten, dw and db accumulated; None skips one. Each block
    of samples lays dy out once (padded for the input gradient when there is one), and both
    gradients read it."""
    kh, kw = w.shape[2], w.shape[3]
    n_batch, channels, k_out = x.shape[0], x.shape[1], w.shape[0]
    if db is not None:
        bias_grad(db, dy)
    if dw is None and dx is None:
        return
    pads = _pads(g.padding, kh, kw, dx is not None)
    nblocks, k4, jblocks = -(-n_batch // LANES), -(-k_out // TILE_CHANNELS) * TILE_CHANNELS, -(-kw // 3)
    dy_block = _block_shape(dy, k4, pads[2:])
    workers, dy_buf = worker_scratch("direct_samples.dy", nblocks, dy_block, x.dtype)
    if dw is not None:
        partials = scratch("direct_samples.wgrad", (nblocks, k4 // 4, channels, 4, kh, 3 * jblocks), np.float64)
        x_block = _block_shape(x, channels, g.padding)
        x_buf = scratch("direct_samples.x", (workers, *x_block), x.dtype)
        acc_buf = scratch("direct_samples.wgrad_acc", (workers, kh, jblocks, 12 * LANES), x.dtype)
        chunk_rows = _chunk_rows(x_block[2], dy_block[2], kh, x.dtype.itemsize)
    else:  # empty: no weight gradient
        partials = scratch("direct_samples.no_dw", (0, 1, 1, 1, 1, 3), np.float64)
        x_buf, acc_buf, chunk_rows = dy_buf[:, :0], scratch("direct_samples.no_acc", (workers, 1, 1, 0), x.dtype), 1
    if dx is not None:
        packed = _pack(w, channels, True)
        bases, offsets, spans = _layout(
            k_out, dy_block[1], dy_block[2], kh, kw, x.shape[2], x.shape[3], pads[2], dy.shape[2]
        )
        y_shape = (workers, packed.shape[0] * packed.shape[4], bases.shape[0] * LANES)
        y_buf, dx_out = scratch("direct_samples.tiles", y_shape, x.dtype), dx
    else:  # empty: no input gradient
        packed, y_buf = scratch("direct_samples.no_dx", (0, 1, 1, 1, 4), x.dtype), dy_buf[:, :0, 0, 0]
        bases, offsets, spans = _layout(k_out, dy_block[1], dy_block[2], kh, kw, 1, 1, 0, 1)
        dx_out = x[:0]
    zero = x.dtype.type(0)
    bufs = (x_buf, dy_buf, y_buf, acc_buf, row_buffers(workers, x, dy))
    _backward_blocks(dx_out, partials, x, dy, pads, chunk_rows, packed, bases, offsets, spans, zero, bufs)
    if dw is not None:
        _sum_blocks(dw, partials)


__all__ = ["accepts", "backward", "forward"]
