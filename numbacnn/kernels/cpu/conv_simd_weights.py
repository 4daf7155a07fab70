"""The weight gradient of the direct stride-1 convolution (conv_simd.py) on explicit vectors.

Both operands lie on flat grids with rows of the padded input's width wp: the input planes xp
(zero-padded), and dy with zeros in its junk columns, so that tap (i, j) of the weight pairs dy
at position q with xp at q + i * wp + j for every q: three taps of a row are three shifted vector
loads of one plane.
"""

import numpy as np
from numba import njit, prange

from .simd import LANES, vfma, vload, vstore, vsum

# Input channels per task: their planes and 4 of dy, for one sample, fit in L1.
WGRAD_CHANNELS = 4


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def weight_grad(dw, dy_grid, dy_offset, lq, xp, wp, zero):
    """dw (K, C, KH, KW) += sum over samples and the first ``lq`` positions of the flat grid
    dy_grid (N, K4, L), read from ``dy_offset`` on (zeros in its junk columns), times the shifted
    input planes xp (N, C, L); both grids have rows of width wp.

    A task is WGRAD_CHANNELS input channels x 4 output channels, and its whole reduction over
    samples and positions happens inside it, so the result does not depend on the thread count.
    Samples are the outer loop: one sample's planes (a few input channels, 4 of dy) stay in L1
    while every tap reads them. Three taps of a row x 4 output channels are 12 accumulators in
    registers for one pass over the positions; between passes they wait in ``acc``, and every
    ``group`` samples their float32 sums go into float64 ``total``."""
    k_out, channels, kh, kw = dw.shape
    n_batch, k4 = dy_grid.shape[0], dy_grid.shape[1]
    blocks, cblocks, jblocks = k4 // 4, -(-channels // WGRAD_CHANNELS), -(-kw // 3)
    # About 1024 products per lane summed in float32 before float64 (a library GEMM sums all of
    # them in float32); fewer folds than 256 cost (benchmarks/NOTES.md, entry 41).
    group = max(1, 1024 // (lq // LANES))
    for task in prange(cblocks * blocks):
        kb, cb = task // cblocks, task % cblocks
        c0, c1 = cb * WGRAD_CHANNELS, min(cb * WGRAD_CHANNELS + WGRAD_CHANNELS, channels)
        total = np.zeros((WGRAD_CHANNELS, 4, kh, kw))
        acc = np.empty((WGRAD_CHANNELS, kh, jblocks, 12 * LANES), dtype=dy_grid.dtype)
        for n0 in range(0, n_batch, group):
            acc[:] = 0
            for n in range(n0, min(n0 + group, n_batch)):
                g0, g1, g2, g3 = (
                    dy_grid[n, 4 * kb, dy_offset:],
                    dy_grid[n, 4 * kb + 1, dy_offset:],
                    dy_grid[n, 4 * kb + 2, dy_offset:],
                    dy_grid[n, 4 * kb + 3, dy_offset:],
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
