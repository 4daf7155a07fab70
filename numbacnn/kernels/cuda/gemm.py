"""Tiled shared-memory GEMM for the CUDA backend (conv and linear are built on it).

    c[z, g] (M, N) (=|+=) op(a)[za, g] (M, K) @ op(b)[zb, g] (K, N)  (+ bias per row or column)

Arrays are 4-D: a batch axis z (an operand with batch 1 is broadcast over all z), a group axis g,
and the matrix. op() is a transpose when ``trans_a``/``trans_b`` is set, read straight from the
untransposed array. One block computes a BM x BN tile of c: it walks K in steps of BK, staging an
A and a B tile in shared memory, and each thread accumulates TM x TN outputs in registers. The
outputs of one thread are strided by the block size, so a warp writes consecutive columns.

Shared and local arrays need their dtype at compile time, so kernels are built per (dtype, tile
shape) by :func:`_build` and cached. The simulator uses a small tile (it runs each thread in Python).
"""

import numba
import numpy as np
from numba import cuda

from .launch import SIMULATOR, flat

# (TY, TX, TM, TN, BK): threads per block TY*TX; tile BM = TY*TM rows by BN = TX*TN columns.
GPU_TILE = (16, 16, 4, 4, 16)
# The simulator runs threads as Python under one lock; 4 threads per block still exercise the
# cooperative tile loads and barriers at a fraction of the cost.
SIMULATOR_TILE = (2, 2, 16, 16, 16)
DEFAULT_TILE = SIMULATOR_TILE if SIMULATOR else GPU_TILE
BIAS_NONE, BIAS_ROW, BIAS_COLUMN = 0, 1, 2
_kernels = {}


def _build(dtype, tile):
    ty, tx, tm, tn, bk = tile
    bm, bn, nthreads = ty * tm, tx * tn, ty * tx
    nb_type = numba.from_dtype(np.dtype(dtype))

    @cuda.jit
    def gemm(c, a, b, bias, trans_a, trans_b, accumulate, bias_mode):
        z = cuda.blockIdx.z // c.shape[1]
        g = cuda.blockIdx.z % c.shape[1]
        za = z if a.shape[0] > 1 else 0
        zb = z if b.shape[0] > 1 else 0
        m_rows, n_cols = c.shape[2], c.shape[3]
        k_len = a.shape[2] if trans_a else a.shape[3]
        m0 = cuda.blockIdx.y * bm
        n0 = cuda.blockIdx.x * bn
        row, col = cuda.threadIdx.y, cuda.threadIdx.x
        tid = row * tx + col
        a_tile = cuda.shared.array((bk, bm), nb_type)
        b_tile = cuda.shared.array((bk, bn), nb_type)
        acc = cuda.local.array((tm, tn), nb_type)
        b_reg = cuda.local.array(tn, nb_type)
        for i in range(tm):
            for j in range(tn):
                acc[i, j] = 0
        for k0 in range(0, k_len, bk):
            # Stage the tiles; consecutive threads read consecutive addresses of the source.
            for e in range(tid, bm * bk, nthreads):
                if trans_a:
                    kk, mm = e // bm, e % bm
                else:
                    mm, kk = e // bk, e % bk
                gm, gk = m0 + mm, k0 + kk
                if gm < m_rows and gk < k_len:
                    a_tile[kk, mm] = a[za, g, gk, gm] if trans_a else a[za, g, gm, gk]
                else:
                    a_tile[kk, mm] = 0
            for e in range(tid, bn * bk, nthreads):
                if trans_b:
                    nn, kk = e // bk, e % bk
                else:
                    kk, nn = e // bn, e % bn
                gn, gk = n0 + nn, k0 + kk
                if gn < n_cols and gk < k_len:
                    b_tile[kk, nn] = b[zb, g, gn, gk] if trans_b else b[zb, g, gk, gn]
                else:
                    b_tile[kk, nn] = 0
            cuda.syncthreads()
            for kk in range(bk):
                for j in range(tn):
                    b_reg[j] = b_tile[kk, col + j * tx]
                for i in range(tm):
                    a_val = a_tile[kk, row + i * ty]
                    for j in range(tn):
                        acc[i, j] += a_val * b_reg[j]
            cuda.syncthreads()
        for i in range(tm):
            gm = m0 + row + i * ty
            if gm >= m_rows:
                continue
            for j in range(tn):
                gn = n0 + col + j * tx
                if gn >= n_cols:
                    continue
                v = acc[i, j]
                if bias_mode == 1:
                    v += bias[g * m_rows + gm]
                elif bias_mode == 2:
                    v += bias[gn]
                if accumulate:
                    c[z, g, gm, gn] += v
                else:
                    c[z, g, gm, gn] = v

    return gemm


def gemm(c, a, b, trans_a=False, trans_b=False, accumulate=False, bias=None, bias_mode=BIAS_NONE, tile=None):
    """c (Z, G, M, N) (=|+=) op(a) @ op(b) (+ bias); see the module docstring for the shapes.

    ``bias`` is (G*M,) for BIAS_ROW (one value per output channel) or (N,) for BIAS_COLUMN.
    """
    tile = tuple(tile or DEFAULT_TILE)
    key = (np.dtype(c.dtype).str, tile)
    kernel = _kernels.get(key)
    if kernel is None:
        kernel = _kernels[key] = _build(c.dtype, tile)
    z_count, groups, m_rows, n_cols = c.shape
    ty, tx, tm, tn, _ = tile
    grid = (-(-n_cols // (tx * tn)), -(-m_rows // (ty * tm)), z_count * groups)
    if bias is None:
        bias, bias_mode = flat(c), BIAS_NONE  # any array of the dtype: never read
    kernel[grid, (tx, ty)](c, a, b, bias, bool(trans_a), bool(trans_b), bool(accumulate), int(bias_mode))
