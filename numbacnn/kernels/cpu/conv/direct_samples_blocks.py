"""How direct_samples.py (the convolution vectorised over samples) lays a block of LANES samples
out with the samples innermost, and writes a block of results back to NCHW.

A block lies as (C, R, Wg, LANES): pixel (c, y, x) of the sample in lane l at [c, y, x, l]. These
copies are transposes between a batch and its blocks; with the lanes innermost, loops of constant
length LANES, LLVM turns them into vector gathers and scatters (several times faster than a store
per lane). Samples whose planes lie a power of two apart would share cache sets in those gathers,
so there a row of each sample goes through the worker's small ``tmp`` first.

Shapes: src (N, S, H, W), block (D, R, Wg, LANES), y (K', P' LANES), out (N, K, OH, OW).
"""

from numba import njit

from ...workspace import scratch
from ..simd import LANES

# Samples whose planes lie a multiple of this many bytes apart share cache sets: a block's copies
# go through a row of each sample at a time there (benchmarks/NOTES.md, entry 59).
ALIASING_BYTES = 2048


@njit(inline="always")
def fill_block(block, src, nb, first, top, left, tmp):
    """block (D, R, Wg, LANES) <- samples nb LANES ... of src (N, S, H, W): pixel (c, y, x) of the
    sample in lane l at [c, top + y, left + x, l]; zeros everywhere else (borders, the lanes past
    N, the planes past S). The zeros are written for a worker's ``first`` block and a part-filled
    one only: the blocks after it write the same pixels, so its zeros are still there (with dy
    padded for the input gradient, zeroing every block cost as much as the rest of the copy)."""
    n_batch, channels, height, width = src.shape
    lanes = min(LANES, n_batch - nb * LANES)
    if first or lanes < LANES:
        block[:] = 0
    if lanes == LANES and src.strides[0] % ALIASING_BYTES == 0:
        # Samples a power of two apart fall on the same cache sets: a row of each sample is
        # copied whole into the worker's tmp (LANES, >= W) first, and gathered from there.
        for c in range(channels):
            for iy in range(height):
                for lane in range(LANES):
                    sample_row, tmp_row = src[nb * LANES + lane, c, iy], tmp[lane]
                    for ix in range(width):
                        tmp_row[ix] = sample_row[ix]
                row = block[c, top + iy]
                for ix in range(width):
                    pixel = row[left + ix]
                    for lane in range(LANES):
                        pixel[lane] = tmp[lane, ix]
        return
    if lanes == LANES:
        # A whole block: the lanes innermost, a loop of constant length that LLVM turns into
        # vector gathers (several times faster than a store per lane).
        samples = src[nb * LANES : nb * LANES + LANES]
        for c in range(channels):
            for iy in range(height):
                row = block[c, top + iy]
                for ix in range(width):
                    pixel = row[left + ix]
                    for lane in range(LANES):
                        pixel[lane] = samples[lane, c, iy, ix]
        return
    for c in range(channels):
        for lane in range(lanes):
            plane = src[nb * LANES + lane, c]
            for iy in range(height):
                row = block[c, top + iy]
                for ix in range(width):
                    row[left + ix, lane] = plane[iy, ix]


@njit(inline="always")
def write_block(out, y, nb, b, has_bias, zero, tmp):
    """out[nb LANES + l, k, oy, ox] = y[k, (oy OW + ox) LANES + l] (+ b[k]) for the block's samples
    (tmp (LANES, >= OW): the worker's, for outputs whose samples alias in cache)."""
    n_batch, k_out, oh, ow = out.shape
    lanes = min(LANES, n_batch - nb * LANES)
    if lanes == LANES and out.strides[0] % ALIASING_BYTES == 0:
        # As in fill_block: a row of every sample transposed in tmp, then written whole.
        for k in range(k_out):
            bias = b[k] if has_bias else zero
            values = y[k]
            for oy in range(oh):
                for ox in range(ow):
                    at = (oy * ow + ox) * LANES
                    for lane in range(LANES):
                        tmp[lane, ox] = values[at + lane]
                for lane in range(LANES):
                    dst, tmp_row = out[nb * LANES + lane, k, oy], tmp[lane]
                    for ox in range(ow):
                        dst[ox] = tmp_row[ox] + bias
        return
    if lanes == LANES:
        # A whole block: the lanes innermost, a loop of constant length (vector scatters).
        samples = out[nb * LANES : nb * LANES + LANES]
        for k in range(k_out):
            bias = b[k] if has_bias else zero
            values = y[k]
            for oy in range(oh):
                for ox in range(ow):
                    at = (oy * ow + ox) * LANES
                    for lane in range(LANES):
                        samples[lane, k, oy, ox] = values[at + lane] + bias
        return
    for lane in range(lanes):
        n = nb * LANES + lane
        for k in range(k_out):
            bias = b[k] if has_bias else zero
            values = y[k]
            for oy in range(oh):
                dst = out[n, k, oy]
                for ox in range(ow):
                    dst[ox] = values[(oy * ow + ox) * LANES + lane] + bias


def row_buffers(workers, a, b):
    """Each worker's row of LANES rows as wide as the wider of a's and b's (N, C, H, W) planes."""
    return scratch("direct_samples.rows", (workers, LANES, max(a.shape[3], b.shape[3])), a.dtype)


__all__ = ["ALIASING_BYTES", "fill_block", "row_buffers", "write_block"]
