"""Convolution in one thread pool, on pixel-major columns (groups 1, dilation 1, any stride).

Each of numba's threads takes chunks of a few samples; per chunk it pads and transposes the input
to NHWC, builds pixel-major columns (a row per output pixel, its taps as (i, j, c)), and runs a
single-threaded OpenBLAS GEMM on them (``blas.py``), so columns stay in the thread's cache and
OpenBLAS starts no threads of its own. Pixel-major puts the thin output-channel dimension where
OpenBLAS's kernels are fast (``../shared/perf-facts.md``; benchmarks/NOTES.md, entry 23).

Shapes: x (N, C, H, W); w (K, C, KH, KW) viewed as w_kr (K, R), R = KH*KW*C in (i, j, c) order;
per thread t: xbuf[t] (S, Hp, Wp, C), cols[t] (S*P, R), ybuf[t] (S*P, K), P = OH*OW, S samples;
per chunk: the dW and db partials, summed in chunk order (bitwise the same for any thread count).
Column-major GEMMs (Fortran): forward Y (K x SP) = W_kr^T' cols; dW (R x K) += cols' dY_pm;
dcols (R x SP) = W_kr' dY_pm'.
"""

import numba
import numpy as np
from numba import njit, prange

from ..workspace import scratch
from . import blas
from .blas import call_gemm

_T, _N = ord("T"), ord("N")


@njit(inline="always")
def _load_chunk(xp, x, n0, count, ph, pw):
    """xp (S, Hp, Wp, C) <- x[n0 : n0 + count] (N, C, H, W), zero border."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    for s in range(count):
        plane = xp[s]
        plane[:, :, :] = 0
        for c in range(channels):
            src = x[n0 + s, c]
            for iy in range(height):
                row = plane[iy + ph]
                for ix in range(width):
                    row[ix + pw, c] = src[iy, ix]


@njit(inline="always")
def _columns(col, xp, count, kh, kw, sh, sw, oh, ow):
    """col (S*P, R) <- the patch of every output pixel, taps (i, j) each a run of C channels."""
    channels = xp.shape[3]
    for s in range(count):
        for oy in range(oh):
            for ox in range(ow):
                dst = col[(s * oh + oy) * ow + ox]
                for i in range(kh):
                    src_row = xp[s, oy * sh + i]
                    for j in range(kw):
                        src = src_row[ox * sw + j]
                        base = (i * kw + j) * channels
                        for c in range(channels):
                            dst[base + c] = src[c]


@njit(inline="always")
def _add_columns(xp, col, count, kh, kw, sh, sw, oh, ow):
    """xp (S, Hp, Wp, C) += every pixel's column gradient col (S*P, R) at its patch: the inverse of
    ``_columns`` (overlapping patches sum)."""
    channels = xp.shape[3]
    for s in range(count):
        for oy in range(oh):
            for ox in range(ow):
                src = col[(s * oh + oy) * ow + ox]
                for i in range(kh):
                    dst_row = xp[s, oy * sh + i]
                    for j in range(kw):
                        dst = dst_row[ox * sw + j]
                        base = (i * kw + j) * channels
                        for c in range(channels):
                            dst[c] += src[base + c]


@njit(inline="always")
def _store_chunk(dx, xp, n0, count, ph, pw):
    """dx[n0 : n0 + count] (N, C, H, W) <- the interior of xp (S, Hp, Wp, C): the inverse of
    ``_load_chunk``."""
    channels, height, width = dx.shape[1], dx.shape[2], dx.shape[3]
    for s in range(count):
        for c in range(channels):
            plane = dx[n0 + s, c]
            for iy in range(height):
                for ix in range(width):
                    plane[iy, ix] = xp[s, iy + ph, ix + pw, c]


@njit(parallel=True, cache=True)
def forward(out, x, w_kr, b, has_bias, sh, sw, ph, pw, kh, kw, chunk, xbuf, cols, ybuf, args, gemm):
    """out (N, K, OH, OW) = conv(x, w) + b, w given as w_kr (K, R)."""
    n_batch = x.shape[0]
    k_out, r = w_kr.shape
    oh, ow = out.shape[2], out.shape[3]
    p = oh * ow
    threads = xbuf.shape[0]
    n_chunks = (n_batch + chunk - 1) // chunk
    for t in prange(threads):
        for ci in range(t, n_chunks, threads):
            n0 = ci * chunk
            count = min(chunk, n_batch - n0)
            _load_chunk(xbuf[t], x, n0, count, ph, pw)
            col = cols[t]
            _columns(col, xbuf[t], count, kh, kw, sh, sw, oh, ow)
            y = ybuf[t]
            call_gemm(gemm, args[t], _T, _N, k_out, count * p, r, w_kr, r, col, r, 0, y, k_out)
            for s in range(count):
                for k in range(k_out):
                    dst = out[n0 + s, k].reshape(p)
                    if has_bias:
                        for q in range(p):
                            dst[q] = y[s * p + q, k] + b[k]
                    else:
                        for q in range(p):
                            dst[q] = y[s * p + q, k]


@njit(parallel=True, cache=True)
def backward(
    dx, dw_part, db_part, has_dx, has_dw, has_db, dy, x, w_kr, sh, sw, ph, pw, kh, kw, chunk, xbuf, cols, dybuf,
    dcols, args, gemm,
):  # fmt: skip
    """Per-chunk partial dW (chunks, K, R) if has_dw and db (chunks, K) (overwritten; summed in chunk
    order by ``add_partials``, so the result does not depend on the thread count), and dx if has_dx."""
    n_batch = x.shape[0]
    k_out, r = w_kr.shape
    oh, ow = dy.shape[2], dy.shape[3]
    p = oh * ow
    threads = xbuf.shape[0]
    n_chunks = (n_batch + chunk - 1) // chunk
    for t in prange(threads):
        for ci in range(t, n_chunks, threads):
            n0 = ci * chunk
            count = min(chunk, n_batch - n0)
            xp = xbuf[t]
            _load_chunk(xp, x, n0, count, ph, pw)
            col = cols[t]
            _columns(col, xp, count, kh, kw, sh, sw, oh, ow)
            d = dybuf[t]
            db_part[ci, :] = 0
            for s in range(count):
                for k in range(k_out):
                    src = dy[n0 + s, k].reshape(p)
                    acc = 0.0
                    for q in range(p):
                        d[s * p + q, k] = src[q]
                        acc += src[q]
                    db_part[ci, k] += acc
            if has_dw:
                call_gemm(gemm, args[t], _N, _T, r, k_out, count * p, col, r, d, k_out, 0, dw_part[ci], r)
            if has_dx:
                dc = dcols[t]
                call_gemm(gemm, args[t], _N, _N, r, count * p, k_out, w_kr, r, d, k_out, 0, dc, r)
                xp[:count] = 0  # becomes the padded NHWC gradient of this chunk
                _add_columns(xp, dc, count, kh, kw, sh, sw, oh, ow)
                _store_chunk(dx, xp, n0, count, ph, pw)


@njit(cache=True)
def weights_to_kr(w_kr, w):
    """w_kr (K, KH*KW*C) <- w (K, C, KH, KW), taps in (i, j, c) order."""
    k_out, channels, kh, kw = w.shape
    for k in range(k_out):
        for i in range(kh):
            for j in range(kw):
                for c in range(channels):
                    w_kr[k, (i * kw + j) * channels + c] = w[k, c, i, j]


@njit(cache=True)
def add_partials(dw, db, has_dw, has_db, dw_part, db_part):
    """dw (K, C, KH, KW) += sum over chunks of dw_part (chunks, K, R) if has_dw; db (K,) += sum of
    db_part if has_db."""
    k_out, channels, kh, kw = dw.shape
    for k in range(k_out):
        for i in range(kh * has_dw):
            for j in range(kw):
                for c in range(channels):
                    acc = 0.0
                    for t in range(dw_part.shape[0]):
                        acc += dw_part[t, k, (i * kw + j) * channels + c]
                    dw[k, c, i, j] += acc
        if has_db:
            acc = 0.0
            for t in range(db_part.shape[0]):
                acc += db_part[t, k]
            db[k] += acc


# ------------------------------------------------------------------ host side
# Columns per chunk: about this many values (1 MB of float32), so a chunk stays in L2.
CHUNK_VALUES = 1 << 18
# Module switch for A/B measurements (False: the np.matmul paths of conv.py).
ENABLED = True


def usable(x, groups, dilation):
    return (
        ENABLED
        and groups == 1
        and tuple(dilation) == (1, 1)
        and x.dtype in (np.float32, np.float64)
        and blas.available()
    )


def _plan(x, w, oh, ow):
    """(threads, samples per chunk, R, P) for this layer."""
    k_out, channels, kh, kw = w.shape
    r, p = channels * kh * kw, oh * ow
    chunk = max(1, min(16, CHUNK_VALUES // max(1, p * r), x.shape[0]))
    return numba.get_num_threads(), chunk, r, p


def _buffers(x, w, padding, chunk, threads, r, p):
    n_batch, channels, height, width = x.shape
    hp, wp = height + 2 * padding[0], width + 2 * padding[1]
    xbuf = scratch("conv_pool.x", (threads, chunk, hp, wp, channels), x.dtype)
    cols = scratch("conv_pool.cols", (threads, chunk * p, r), x.dtype)
    args = scratch("conv_pool.args", (threads, 12), np.int64)
    w_kr = scratch("conv_pool.w", (w.shape[0], r), x.dtype)
    weights_to_kr(w_kr, w)
    return xbuf, cols, args, w_kr


class _SingleThreadedBlas:
    """OpenBLAS at one thread while numba's threads each run their own GEMMs (then restored)."""

    def __enter__(self):
        self.before = blas.get_threads()
        if self.before != 1:
            blas.set_threads(1)

    def __exit__(self, *exc):
        if self.before != 1:
            blas.set_threads(self.before)


def conv2d_forward(out, x, w, b, stride, padding):
    """out (N, K, OH, OW) = conv(x, w) + b (b may be None); groups 1, dilation 1."""
    oh, ow = out.shape[2], out.shape[3]
    threads, chunk, r, p = _plan(x, w, oh, ow)
    xbuf, cols, args, w_kr = _buffers(x, w, padding, chunk, threads, r, p)
    ybuf = scratch("conv_pool.y", (threads, chunk * p, w.shape[0]), x.dtype)
    has_bias = b is not None
    with _SingleThreadedBlas():
        forward(out, x, w_kr, b if has_bias else w_kr[0], has_bias, stride[0], stride[1], padding[0], padding[1],
                w.shape[2], w.shape[3], chunk, xbuf, cols, ybuf, args, blas.gemm_for(x.dtype))  # fmt: skip


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding):
    """dx (overwritten), dw and db (accumulated); each skipped if None."""
    oh, ow = dy.shape[2], dy.shape[3]
    threads, chunk, r, p = _plan(x, w, oh, ow)
    xbuf, cols, args, w_kr = _buffers(x, w, padding, chunk, threads, r, p)
    k_out = w.shape[0]
    dybuf = scratch("conv_pool.dy", (threads, chunk * p, k_out), x.dtype)
    dcols = scratch("conv_pool.dcols", (threads, chunk * p, r), x.dtype)
    n_chunks = -(-x.shape[0] // chunk)
    dw_part = scratch("conv_pool.dw", (n_chunks, k_out, r), x.dtype)
    db_part = scratch("conv_pool.db", (n_chunks, k_out), x.dtype)
    has_dx, has_dw, has_db = dx is not None, dw is not None, db is not None
    with _SingleThreadedBlas():
        backward(dx if has_dx else x, dw_part, db_part, has_dx, has_dw, has_db, dy, x, w_kr, stride[0], stride[1],
                 padding[0], padding[1], w.shape[2], w.shape[3], chunk, xbuf, cols, dybuf, dcols, args,
                 blas.gemm_for(x.dtype))  # fmt: skip
    add_partials(w if dw is None else dw, db if has_db else db_part[0], has_dw, has_db, dw_part, db_part)
