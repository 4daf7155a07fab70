"""The weight gradient of the direct stride-1 convolution vectorised over positions
(direct_positions.py), on explicit vectors.

Both operands lie on flat grids with rows of the padded input's width wp: the input planes xp
(zero-padded), and dy with zeros in its junk columns, so that tap (i, j) of the weight pairs dy
at position q with xp at q + i * wp + j for every q: three taps of a row are three shifted vector
loads of one plane.
"""

import numpy as np
from numba import njit, prange

from ...workspace import scratch, worker_scratch
from ..conv_tiles import dot_4x3
from ..microkernel import WGRAD_CHANNELS, samples_per_fold
from ..simd import LANES, vload, vsum


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _weight_grad(dw, dy_grid, dy_offset, lq, xp, wp, zero, totals, accs):
    """dw (K, C, KH, KW) += sum over samples and the first ``lq`` positions of the flat grid
    dy_grid (N, K4, L), read from ``dy_offset`` on (zeros in its junk columns), times the shifted
    input planes xp (N, C, L); both grids have rows of width wp.

    A task is WGRAD_CHANNELS input channels x 4 output channels, and its whole reduction over
    samples and positions happens inside it, so the result does not depend on the thread count.
    Samples are the outer loop: one sample's planes (a few input channels, 4 of dy) stay in L1
    while every tap reads them. Three taps of a row x 4 output channels are 12 accumulators in
    registers for one pass over the positions; between passes they wait in ``acc``, and every
    ``fold_samples`` samples their float32 sums go into float64 ``total``. Worker w keeps them in
    totals[w] (WGRAD_CHANNELS, 4, KH, KW) float64 and accs[w] (WGRAD_CHANNELS, KH, KW/3, 12 LANES)."""
    k_out, channels, kh, kw = dw.shape
    n_batch, k4 = dy_grid.shape[0], dy_grid.shape[1]
    blocks, cblocks, jblocks = k4 // 4, -(-channels // WGRAD_CHANNELS), -(-kw // 3)
    fold_samples = samples_per_fold(lq // LANES)
    workers, tasks = totals.shape[0], cblocks * blocks
    for worker in prange(workers):
        total, acc = totals[worker], accs[worker]
        for task in range(worker * tasks // workers, (worker + 1) * tasks // workers):
            kb, cb = task // cblocks, task % cblocks
            c0, c1 = cb * WGRAD_CHANNELS, min(cb * WGRAD_CHANNELS + WGRAD_CHANNELS, channels)
            total[:] = 0
            for n0 in range(0, n_batch, fold_samples):
                acc[:] = 0
                for n in range(n0, min(n0 + fold_samples, n_batch)):
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
                                at = i * wp + 3 * jb  # three taps of row i: three shifted loads
                                dot_4x3(acc[c - c0, i, jb], g0, g1, g2, g3, plane, plane, plane, at, at + 1, at + 2, lq)
                # Each fold's sums go into float64: long reductions keep their precision.
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


def weight_grad(dw, dy_grid, dy_offset, lq, xp, wp, zero):
    """dw (K, C, KH, KW) += the products of dy_grid (N, K4, L) from ``dy_offset`` on and the shifted
    planes of xp (N, C, L), over the first ``lq`` positions (see ``_weight_grad``)."""
    k_out, channels, kh, kw = dw.shape
    tasks = -(-channels // WGRAD_CHANNELS) * (dy_grid.shape[1] // 4)
    workers, totals = worker_scratch("direct_positions.wgrad_total", tasks, (WGRAD_CHANNELS, 4, kh, kw), np.float64)
    accs = scratch("direct_positions.wgrad_acc", (workers, WGRAD_CHANNELS, kh, -(-kw // 3), 12 * LANES), xp.dtype)
    _weight_grad(dw, dy_grid, dy_offset, lq, xp, wp, zero, totals, accs)
