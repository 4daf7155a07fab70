"""The GEMM micro-kernel on explicit vectors (simd.py): a 6 x (2 LANES) block of C held in 12
vector registers while k rank-1 updates stream through them. Each update loads two vectors of B,
broadcasts six scalars of A and issues 12 FMAs, so the FMA units, not memory, set the pace.

Shapes: c (6, 2 LANES); a (k, 6) and b (k, 2 LANES) packed (C-contiguous, one row per step of k).
``fma_peak`` runs it over operands that stay in L1: the machine's FMA peak as numba code sees it.
"""

import numpy as np
from numba import njit, prange

from .simd import LANES, vfma, vload, vsplat, vstore

ROWS, COLUMNS = 6, 2 * LANES


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
def dot_4x3(acc, d0, d1, d2, d3, x0, x1, x2, x_at0, x_at1, x_at2, length):
    """acc (12 LANES,) += over every vector q of range(0, length, LANES), the products of
    d_r[q : q + LANES] and x_j[x_at_j + q :][:LANES] (accumulator 3 r + j), the 12 sums held in
    registers through the loop: 4 + 3 loads per 12 FMAs. The weight gradients' micro-kernel: a
    reduction along the contiguous axis of 4 rows of dy against 3 input rows (or 3 taps of one)."""
    a00, a01, a02 = vload(acc, 0), vload(acc, LANES), vload(acc, 2 * LANES)
    a10, a11, a12 = vload(acc, 3 * LANES), vload(acc, 4 * LANES), vload(acc, 5 * LANES)
    a20, a21, a22 = vload(acc, 6 * LANES), vload(acc, 7 * LANES), vload(acc, 8 * LANES)
    a30, a31, a32 = vload(acc, 9 * LANES), vload(acc, 10 * LANES), vload(acc, 11 * LANES)
    for q in range(0, length, LANES):
        v0, v1, v2 = vload(x0, x_at0 + q), vload(x1, x_at1 + q), vload(x2, x_at2 + q)
        d = vload(d0, q)
        a00, a01, a02 = vfma(d, v0, a00), vfma(d, v1, a01), vfma(d, v2, a02)
        d = vload(d1, q)
        a10, a11, a12 = vfma(d, v0, a10), vfma(d, v1, a11), vfma(d, v2, a12)
        d = vload(d2, q)
        a20, a21, a22 = vfma(d, v0, a20), vfma(d, v1, a21), vfma(d, v2, a22)
        d = vload(d3, q)
        a30, a31, a32 = vfma(d, v0, a30), vfma(d, v1, a31), vfma(d, v2, a32)
    vstore(acc, 0, a00), vstore(acc, LANES, a01), vstore(acc, 2 * LANES, a02)
    vstore(acc, 3 * LANES, a10), vstore(acc, 4 * LANES, a11), vstore(acc, 5 * LANES, a12)
    vstore(acc, 6 * LANES, a20), vstore(acc, 7 * LANES, a21), vstore(acc, 8 * LANES, a22)
    vstore(acc, 9 * LANES, a30), vstore(acc, 10 * LANES, a31), vstore(acc, 11 * LANES, a32)


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
