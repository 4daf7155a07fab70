"""1x1 convolutions (stride 1, no padding, groups 1) as GEMMs on the NCHW planes, in one thread pool.

A 1x1 convolution is out[n] (K, P) = W (K, C) @ x[n] (C, P) with P = H*W: the NCHW planes already
are the GEMM's operands, so nothing is copied into columns. Each of numba's threads takes chunks of
samples and runs single-threaded OpenBLAS GEMMs on them (``blas.py``), so no second thread pool
spins (benchmarks/NOTES.md, entry 27). dW and db are summed per chunk into
partials that ``_add_partials`` adds in chunk order: the result does not depend on the
thread count (the chunk size depends only on the shapes).

Column-major views (Fortran) of the row-major arrays: x[n] is (P x C) with ld P, W (K, C) is
(C x K) with ld C, out[n] and dy[n] are (P x K) with ld P, a dW partial (K, C) is (C x K) with ld C:
    forward  out[n]'  = x[n]' W'          gemm(N, N, P, K, C)
    dx       dx[n]'   = dy[n]' W          gemm(N, T, P, C, K)
    dW       dW'     += x[n] dy[n]'       gemm(T, N, C, K, P)
"""

import numba
import numpy as np
from numba import njit, prange

from ..workspace import scratch
from . import blas
from .blas import call_gemm

_T, _N = ord("T"), ord("N")
# Samples per chunk: about this many values of x and out together (1 MB of float32), so a chunk
# stays in L2.
CHUNK_VALUES = 1 << 18
# Module switch for A/B measurements (False: the paths of conv.py that take 1x1 layers otherwise).
ENABLED = True


def usable(x, w, stride, padding, groups):
    return (
        ENABLED
        and w.shape[2] == 1
        and w.shape[3] == 1
        and tuple(stride) == (1, 1)
        and tuple(padding) == (0, 0)
        and groups == 1
        and x.dtype in (np.float32, np.float64)
        and blas.available()
    )


class _SingleThreadedBlas:
    """OpenBLAS at one thread while numba's threads each run their own GEMMs (then restored)."""

    def __enter__(self):
        self.before = blas.get_threads()
        if self.before != 1:
            blas.set_threads(1)

    def __exit__(self, *exc):
        if self.before != 1:
            blas.set_threads(self.before)


@njit(cache=True)
def _add_partials(dw, db, has_dw, has_db, dw_part, db_part):
    """dw (K, C) += the sum over chunks of dw_part (chunks, K, C) if has_dw; db (K,) += the sum of
    db_part (chunks, K) if has_db; chunk by chunk, so the sums do not depend on the thread count."""
    for k in range(dw.shape[0]):
        for c in range(dw.shape[1] * has_dw):
            acc = 0.0
            for t in range(dw_part.shape[0]):
                acc += dw_part[t, k, c]
            dw[k, c] += acc
        if has_db:
            acc = 0.0
            for t in range(db_part.shape[0]):
                acc += db_part[t, k]
            db[k] += acc


@njit(parallel=True, cache=True)
def _forward(out, x, w, b, has_bias, chunk, threads, args, gemm):
    n_batch, channels = x.shape[0], x.shape[1]
    k_out, p = out.shape[1], out.shape[2]
    n_chunks = (n_batch + chunk - 1) // chunk
    for t in prange(threads):
        for ci in range(t, n_chunks, threads):
            for n in range(ci * chunk, min((ci + 1) * chunk, n_batch)):
                call_gemm(gemm, args[t], _N, _N, p, k_out, channels, x[n], p, w, channels, 0, out[n], p)
                if has_bias:
                    for k in range(k_out):
                        out[n, k] += b[k]


@njit(parallel=True, cache=True)
def _backward(dx, dw_part, db_part, has_dx, has_dw, dy, x, w, chunk, threads, args, gemm):
    n_batch, channels = x.shape[0], x.shape[1]
    k_out, p = dy.shape[1], dy.shape[2]
    n_chunks = (n_batch + chunk - 1) // chunk
    for t in prange(threads):
        for ci in range(t, n_chunks, threads):
            db_part[ci, :] = 0
            first = ci * chunk
            for n in range(first, min((ci + 1) * chunk, n_batch)):
                for k in range(k_out):
                    acc = 0.0
                    for q in range(p):
                        acc += dy[n, k, q]
                    db_part[ci, k] += acc
                if has_dw:
                    beta = 0 if n == first else 1
                    call_gemm(gemm, args[t], _T, _N, channels, k_out, p, x[n], p, dy[n], p, beta, dw_part[ci], channels)
                if has_dx:
                    call_gemm(gemm, args[t], _N, _T, p, channels, k_out, dy[n], p, w, channels, 0, dx[n], p)


def _plan(x, n_out):
    """(threads, samples per chunk): chunks of about CHUNK_VALUES values of x and out together."""
    per_sample = (x.shape[1] + n_out) * x.shape[2] * x.shape[3]
    return numba.get_num_threads(), max(1, min(16, CHUNK_VALUES // max(1, per_sample), x.shape[0]))


def _planes(a):
    return a.reshape(a.shape[0], a.shape[1], -1)


def conv2d_forward(out, x, w, b):
    """out (N, K, H, W) = conv1x1(x (N, C, H, W), w (K, C, 1, 1)) + b (K,) or None."""
    threads, chunk = _plan(x, w.shape[0])
    args = scratch("conv_pointwise.args", (threads, 12), np.int64)
    has_bias = b is not None
    w_kc = w.reshape(w.shape[0], w.shape[1])
    with _SingleThreadedBlas():
        _forward(_planes(out), _planes(x), w_kc, b if has_bias else w_kc[0], has_bias, chunk, threads, args,
                 blas.gemm_for(x.dtype))  # fmt: skip


def conv2d_backward(dx, dw, db, dy, x, w):
    """dx (overwritten), dw and db (accumulated) of a 1x1 convolution; each skipped if None."""
    threads, chunk = _plan(x, w.shape[0])
    args = scratch("conv_pointwise.args", (threads, 12), np.int64)
    k_out, channels = w.shape[0], w.shape[1]
    n_chunks = -(-x.shape[0] // chunk)
    dw_part = scratch("conv_pointwise.dw", (n_chunks, k_out, channels), x.dtype)
    db_part = scratch("conv_pointwise.db", (n_chunks, k_out), x.dtype)
    has_dx, has_dw, has_db = dx is not None, dw is not None, db is not None
    with _SingleThreadedBlas():
        _backward(_planes(dx if has_dx else x), dw_part, db_part, has_dx, has_dw, _planes(dy), _planes(x),
                  w.reshape(k_out, channels), chunk, threads, args, blas.gemm_for(x.dtype))  # fmt: skip
    dw_kc = (w if dw is None else dw).reshape(k_out, channels)
    _add_partials(dw_kc, db if has_db else db_part[0], has_dw, has_db, dw_part, db_part)
