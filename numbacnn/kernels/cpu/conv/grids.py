"""What the direct convolutions share: planes laid on flat zero-padded grids, and weights packed
in blocks of output channels.

A flat grid holds each plane's rows, ``wp`` values apart, with ``top`` rows and ``left`` columns of
zeros before them: the taps of every output position are then constant offsets
(direct_positions.py, direct_channels.py).
"""

import functools

import numpy as np
from numba import njit, prange


@njit(inline="always")
def to_grid_plane(grid, plane, top, left, wp):
    """grid (L,) <- plane (H, W) at row ``top`` and column ``left`` of rows of width wp, zeros
    around it: each value is written once, and the row copies, on views, vectorise."""
    height, width = plane.shape
    grid[: top * wp + left] = 0
    for iy in range(height):
        row = (iy + top) * wp + left
        dst, src = grid[row : row + width], plane[iy]
        for ix in range(width):
            dst[ix] = src[ix]
        grid[row + width : row + wp] = 0
    grid[(height + top) * wp + left :] = 0


@njit(parallel=True, cache=True)
def to_flat_grid(dst, src, top, left, wp):
    """dst (N, D, L) <- each plane of src (N, S, H, W) at row ``top`` and column ``left`` of a
    flat grid of rows of width wp; zeros everywhere else, and in the planes past S (D >= S)."""
    n_batch, planes = dst.shape[0], dst.shape[1]
    channels = src.shape[1]
    for task in prange(n_batch * planes):
        n, c = task // planes, task % planes
        if c < channels:
            to_grid_plane(dst[n, c], src[n, c], top, left, wp)
        else:
            dst[n, c] = 0


# Weights packed in one thread below this many values: a parallel region that follows Python code
# wakes its threads first, which costs more than packing a small layer's weights
# (benchmarks/NOTES.md, entry 55).
SERIAL_PACK_VALUES = 1 << 16


@njit(inline="always")
def _pack_row(packed, w, row, blocks, per_group, taps_i, taps_j, transpose):
    """Row ``row`` of ``pack_weights``: one block of output channels of one group."""
    inputs, n_i, n_j, block = packed.shape[1], packed.shape[2], packed.shape[3], packed.shape[4]
    g, kb = row // blocks, row % blocks
    for c in range(inputs):
        for a in range(n_i):
            for bj in range(n_j):
                for r in range(block):
                    o = kb * block + r
                    value = w[0, 0, 0, 0] * 0
                    if o < per_group:
                        if transpose:
                            value = w[g * inputs + c, o, taps_i[a], taps_j[bj]]
                        else:
                            value = w[g * per_group + o, c, taps_i[a], taps_j[bj]]
                    packed[row, c, a, bj, r] = value


@njit(parallel=True, cache=True)
def _pack_parallel(packed, w, blocks, per_group, taps_i, taps_j, transpose):
    for row in prange(packed.shape[0]):
        _pack_row(packed, w, row, blocks, per_group, taps_i, taps_j, transpose)


@njit(cache=True)
def _pack_serial(packed, w, blocks, per_group, taps_i, taps_j, transpose):
    for row in range(packed.shape[0]):
        _pack_row(packed, w, row, blocks, per_group, taps_i, taps_j, transpose)


@functools.lru_cache(maxsize=64)
def tap_order(size, flip):
    """The kernel taps 0..size-1 in order, or reversed to flip the kernel (for pack_weights)."""
    return np.arange(size - 1, -1, -1) if flip else np.arange(size)


def pack_weights(packed, w, groups, taps_i, taps_j, transpose):
    """packed (G*B, Cin, I, J, BLOCK) <- the taps (taps_i x taps_j) of w (K, C/G, KH, KW), BLOCK
    output channels of one group per row, zero past the group's end. Forward: Cin = C/G and the
    output channels are K; ``transpose`` (the input gradient): Cin = K/G and they are C. Taps
    listed in reverse flip the kernel (a stride-1 input gradient as a convolution)."""
    blocks = packed.shape[0] // groups
    per_group = w.shape[1] if transpose else w.shape[0] // groups
    pack = _pack_serial if packed.size < SERIAL_PACK_VALUES else _pack_parallel
    pack(packed, w, blocks, per_group, taps_i, taps_j, transpose)


__all__ = ["pack_weights", "tap_order", "to_flat_grid", "to_grid_plane"]
