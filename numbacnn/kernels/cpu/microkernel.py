"""The register tiles on explicit vectors (simd.py): every hand-unrolled block of accumulators the
kernels use, each kept in vector registers while a reduction streams through it, so that the FMA
units, not memory, set the pace. Each tile names its 12 accumulators one by one: LLVM then keeps
them in registers (16 ymm with AVX2; zmm with AVX-512).

* ``gemm_6x2v``, ``gemm_6x2v_rows``: C (6, 2 LANES) += A' B, B packed or read in place (GEMM,
  1x1 convolutions); ``gemm_6x2v_rows_to``, ``gemm_6x2v_strided``: the same into 6 rows of a
  larger matrix, from zero or added, A packed or read in place (Winograd's 16 products and their
  weight gradient);
* ``dot_4x3``: 4 rows of dy against 3 input rows along their contiguous axis (weight gradients);
* ``positions_4x3v``, ``positions_2x6v``: a direct convolution's block of output channels over
  consecutive positions of a flat grid (conv/direct_positions.py);
* ``gather_6x2v``: 6 output positions x 2 vectors of output channels (conv/direct_channels.py);
* ``outer_3x4v``: 3 taps x 4 vectors of output channels of a weight gradient (the same).

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
def positions_4x3v(y, planes, weights, offsets, zero):
    """y (4, Lq) = the wide-grid convolution of one sample's flat planes (C * L,) with one block of
    4 output channels' weights (T * 4,), T = C * KH * KW taps, where tap t reads the planes from
    ``offsets[t]`` = c * L + i * wp + j on. One loop over the taps rather than three nested ones:
    the loop body is then only the 7 loads and 12 FMAs. Lq is a multiple of 3 LANES, and L covers
    every tap of the last tile."""
    lq = y.shape[1]
    y0, y1, y2, y3 = y[0], y[1], y[2], y[3]
    for q0 in range(0, lq, 3 * LANES):
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
def positions_2x6v(y, planes, weights, offsets, zero):
    """``positions_4x3v`` for blocks of 2 output channels (y (2, Lq), weights (T * 2,)): 6 vectors
    of positions x 2 channels, also 12 accumulators. Layers whose channel count is not a multiple
    of 4 (LeNet's 6) so waste no channels; Lq is a multiple of 6 LANES."""
    lq = y.shape[1]
    y0, y1 = y[0], y[1]
    for q0 in range(0, lq, 6 * LANES):
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


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def gather_6x2v(tile, planes, weights, offsets, s0, s1, s2, s3, s4, s5, zero):
    """tile (6, 2 LANES) = for output positions r = 0..5 the sums over taps t of the pixel
    planes[s_r + offsets[t]] (broadcast) times weights[t * 2 LANES :][:2 LANES]: 12 accumulators;
    per tap 2 weight loads, 6 broadcasts, 12 FMAs."""
    a00 = a01 = a10 = a11 = a20 = a21 = vsplat(zero)
    a30 = a31 = a40 = a41 = a50 = a51 = vsplat(zero)
    for t in range(offsets.shape[0]):
        o = offsets[t]
        w0, w1 = vload(weights, t * 2 * LANES), vload(weights, t * 2 * LANES + LANES)
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
    vstore(tile[0], 0, a00), vstore(tile[0], LANES, a01)
    vstore(tile[1], 0, a10), vstore(tile[1], LANES, a11)
    vstore(tile[2], 0, a20), vstore(tile[2], LANES, a21)
    vstore(tile[3], 0, a30), vstore(tile[3], LANES, a31)
    vstore(tile[4], 0, a40), vstore(tile[4], LANES, a41)
    vstore(tile[5], 0, a50), vstore(tile[5], LANES, a51)


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def outer_3x4v(acc, plane, dy, starts, shift, step, row_stride, k0):
    """acc (12 LANES,) += over positions p: the pixels plane[starts[p] + shift + j step] (3 taps j,
    broadcast) times dy[p row_stride + k0 :][:4 LANES] (4 vectors of output channels); accumulator
    4 j + v. Three broadcasts, then one dy vector at a time: 12 accumulators, 3 broadcasts and 1
    dy vector fill the 16 ymm registers exactly."""
    a00, a01, a02, a03 = vload(acc, 0), vload(acc, LANES), vload(acc, 2 * LANES), vload(acc, 3 * LANES)
    a10, a11 = vload(acc, 4 * LANES), vload(acc, 5 * LANES)
    a12, a13 = vload(acc, 6 * LANES), vload(acc, 7 * LANES)
    a20, a21 = vload(acc, 8 * LANES), vload(acc, 9 * LANES)
    a22, a23 = vload(acc, 10 * LANES), vload(acc, 11 * LANES)
    for p in range(starts.shape[0]):
        at, row = starts[p] + shift, p * row_stride + k0
        v0 = vbroadcast(plane, at)
        v1 = vbroadcast(plane, at + step)
        v2 = vbroadcast(plane, at + 2 * step)
        d = vload(dy, row)
        a00, a10, a20 = vfma(v0, d, a00), vfma(v1, d, a10), vfma(v2, d, a20)
        d = vload(dy, row + LANES)
        a01, a11, a21 = vfma(v0, d, a01), vfma(v1, d, a11), vfma(v2, d, a21)
        d = vload(dy, row + 2 * LANES)
        a02, a12, a22 = vfma(v0, d, a02), vfma(v1, d, a12), vfma(v2, d, a22)
        d = vload(dy, row + 3 * LANES)
        a03, a13, a23 = vfma(v0, d, a03), vfma(v1, d, a13), vfma(v2, d, a23)
    vstore(acc, 0, a00), vstore(acc, LANES, a01), vstore(acc, 2 * LANES, a02), vstore(acc, 3 * LANES, a03)
    vstore(acc, 4 * LANES, a10), vstore(acc, 5 * LANES, a11), vstore(acc, 6 * LANES, a12), vstore(acc, 7 * LANES, a13)
    vstore(acc, 8 * LANES, a20), vstore(acc, 9 * LANES, a21), vstore(acc, 10 * LANES, a22)
    vstore(acc, 11 * LANES, a23)


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
