"""The GEMM register tiles on explicit vectors (simd.py; the direct convolutions' tiles are in
conv_tiles.py): hand-unrolled blocks of accumulators, each kept in vector registers while a
reduction streams through it, so that the FMA units, not memory, set the pace. Each tile names its
12 accumulators one by one: LLVM then keeps them in registers (16 ymm with AVX2; zmm with
AVX-512).

* ``gemm_6x2v``, ``gemm_6x2v_rows``: C (6, 2 LANES) += A' B, B packed or read in place (GEMM,
  1x1 convolutions); ``gemm_6x2v_rows_to``, ``gemm_6x2v_strided``: the same into 6 rows of a
  larger matrix, from zero or added, A packed or read in place (Winograd's 16 products and their
  weight gradient).

The weight gradients sum a task's products in float32 vector lanes and fold them into float64
every ``samples_per_fold`` samples (one rule, ``FOLD_PRODUCTS``). ``fma_peak`` runs the GEMM tile
over operands that stay in L1: the machine's FMA peak as numba code sees it.
"""

import numpy as np
from numba import njit, prange

from .simd import LANES, vbroadcast, vfma, vload, vsplat, vstore

ROWS, COLUMNS = 6, 2 * LANES
# Input channels per weight-gradient task: their planes and 4 of dy, for one sample, fit in L1.
WGRAD_CHANNELS = 4
# Products per float32 lane summed before they fold into float64, for every weight gradient (a
# library GEMM sums them all in float32): folding less often was no faster within the noise and
# less precise (benchmarks/NOTES.md, entries 41 and 47).
FOLD_PRODUCTS = 256


@njit(inline="always")
def samples_per_fold(products_per_lane):
    """How many samples' products a weight gradient sums in float32 lanes before it folds them into
    float64, given the products one sample adds to each lane: at least one sample."""
    return max(1, FOLD_PRODUCTS // max(1, products_per_lane))


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def gemm_6x2v(c, a, b, k):
    """c (6, 2 LANES) += a.T @ b for a (k, 6), b (k, 2 LANES), all C-contiguous."""
    gemm_6x2v_rows(c, a, b, 0, 2 * LANES, k)


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def gemm_6x2v_rows(c, a, b, b_at, b_stride, k):
    """``gemm_6x2v`` with row p of B read in place at b.flat[b_at + p * b_stride:][:2 LANES]
    (rows of an unpacked matrix, such as the NCHW planes of one sample)."""
    n = 2 * LANES
    c00, c01 = vload(c, 0), vload(c, LANES)
    c10, c11 = vload(c, n), vload(c, n + LANES)
    c20, c21 = vload(c, 2 * n), vload(c, 2 * n + LANES)
    c30, c31 = vload(c, 3 * n), vload(c, 3 * n + LANES)
    c40, c41 = vload(c, 4 * n), vload(c, 4 * n + LANES)
    c50, c51 = vload(c, 5 * n), vload(c, 5 * n + LANES)
    for p in range(k):
        b0, b1 = vload(b, b_at + p * b_stride), vload(b, b_at + p * b_stride + LANES)
        x = vsplat(a[p, 0])
        c00, c01 = vfma(x, b0, c00), vfma(x, b1, c01)
        x = vsplat(a[p, 1])
        c10, c11 = vfma(x, b0, c10), vfma(x, b1, c11)
        x = vsplat(a[p, 2])
        c20, c21 = vfma(x, b0, c20), vfma(x, b1, c21)
        x = vsplat(a[p, 3])
        c30, c31 = vfma(x, b0, c30), vfma(x, b1, c31)
        x = vsplat(a[p, 4])
        c40, c41 = vfma(x, b0, c40), vfma(x, b1, c41)
        x = vsplat(a[p, 5])
        c50, c51 = vfma(x, b0, c50), vfma(x, b1, c51)
    vstore(c, 0, c00)
    vstore(c, LANES, c01)
    vstore(c, n, c10)
    vstore(c, n + LANES, c11)
    vstore(c, 2 * n, c20)
    vstore(c, 2 * n + LANES, c21)
    vstore(c, 3 * n, c30)
    vstore(c, 3 * n + LANES, c31)
    vstore(c, 4 * n, c40)
    vstore(c, 4 * n + LANES, c41)
    vstore(c, 5 * n, c50)
    vstore(c, 5 * n + LANES, c51)


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def gemm_6x2v_rows_to(c, c_at, c_stride, a, b, b_at, b_stride, k, zero):
    """c.flat[c_at + r c_stride:][:2 LANES] = (a.T @ B)[r] for r < 6, overwritten: a (k, 6) packed,
    row p of B read in place at b.flat[b_at + p b_stride:][:2 LANES]. ``gemm_6x2v_rows`` from zero,
    each row of the block stored straight into its own row of a larger matrix."""
    gemm_6x2v_strided(c, c_at, c_stride, a, 0, 1, ROWS, b, b_at, b_stride, k, zero, False)


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def gemm_6x2v_strided(c, c_at, c_stride, a, a_at, a_row, a_step, b, b_at, b_stride, k, zero, accumulate):
    """c.flat[c_at + r c_stride:][:2 LANES] (+)= sum over p < k of A[r, p] B[p] for r < 6 (added to
    c with ``accumulate``, else overwriting it): A[r, p] = a.flat[a_at + r a_row + p a_step] (packed:
    a_row 1, a_step 6; 6 rows of a matrix read in place: a_row its row stride, a_step 1; or 6
    columns: a_row 1, a_step the row stride), row p of B at b.flat[b_at + p b_stride:][:2 LANES]."""
    c00 = c01 = c10 = c11 = c20 = c21 = vsplat(zero)
    c30 = c31 = c40 = c41 = c50 = c51 = vsplat(zero)
    if accumulate:
        c00, c01 = vload(c, c_at), vload(c, c_at + LANES)
        c10, c11 = vload(c, c_at + c_stride), vload(c, c_at + c_stride + LANES)
        c20, c21 = vload(c, c_at + 2 * c_stride), vload(c, c_at + 2 * c_stride + LANES)
        c30, c31 = vload(c, c_at + 3 * c_stride), vload(c, c_at + 3 * c_stride + LANES)
        c40, c41 = vload(c, c_at + 4 * c_stride), vload(c, c_at + 4 * c_stride + LANES)
        c50, c51 = vload(c, c_at + 5 * c_stride), vload(c, c_at + 5 * c_stride + LANES)
    for p in range(k):
        b0, b1 = vload(b, b_at + p * b_stride), vload(b, b_at + p * b_stride + LANES)
        at = a_at + p * a_step
        x = vbroadcast(a, at)
        c00, c01 = vfma(x, b0, c00), vfma(x, b1, c01)
        x = vbroadcast(a, at + a_row)
        c10, c11 = vfma(x, b0, c10), vfma(x, b1, c11)
        x = vbroadcast(a, at + 2 * a_row)
        c20, c21 = vfma(x, b0, c20), vfma(x, b1, c21)
        x = vbroadcast(a, at + 3 * a_row)
        c30, c31 = vfma(x, b0, c30), vfma(x, b1, c31)
        x = vbroadcast(a, at + 4 * a_row)
        c40, c41 = vfma(x, b0, c40), vfma(x, b1, c41)
        x = vbroadcast(a, at + 5 * a_row)
        c50, c51 = vfma(x, b0, c50), vfma(x, b1, c51)
    vstore(c, c_at, c00), vstore(c, c_at + LANES, c01)
    vstore(c, c_at + c_stride, c10), vstore(c, c_at + c_stride + LANES, c11)
    vstore(c, c_at + 2 * c_stride, c20), vstore(c, c_at + 2 * c_stride + LANES, c21)
    vstore(c, c_at + 3 * c_stride, c30), vstore(c, c_at + 3 * c_stride + LANES, c31)
    vstore(c, c_at + 4 * c_stride, c40), vstore(c, c_at + 4 * c_stride + LANES, c41)
    vstore(c, c_at + 5 * c_stride, c50), vstore(c, c_at + 5 * c_stride + LANES, c51)


@njit(fastmath=True, boundscheck=False, cache=True)
def gemm_6x2v_once(c, a, b, k):
    """gemm_6x2v as a function of its own (tests, assembly checks)."""
    gemm_6x2v(c, a, b, k)


@njit(fastmath=True, boundscheck=False, parallel=True, cache=True)
def fma_peak(c, a, b, repeats):
    """Run the micro-kernel ``repeats`` times per thread: c (threads, 6, 2 LANES) one block per
    thread, a (k, 6) and b (k, 2 LANES) shared (read only, in L1). 2 * 6 * 2 LANES * k * repeats
    * threads floating-point operations in all."""
    k = a.shape[0]
    for t in prange(c.shape[0]):
        block = c[t]
        for _ in range(repeats):
            gemm_6x2v(block, a, b, k)


def operands(k=256, threads=1, dtype=np.float32):
    """Small operands for fma_peak: (c, a, b) that fit in L1 (k = 256: 24 KB of B at 8 lanes)."""
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((k, ROWS)) * 1e-3).astype(dtype)
    b = (rng.standard_normal((k, COLUMNS)) * 1e-3).astype(dtype)
    return np.zeros((threads, ROWS, COLUMNS), dtype), a, b
