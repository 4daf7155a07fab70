"""1x1 convolutions (no padding, groups 1) as matrix products on the NCHW planes, on our
micro-kernel (microkernel.py), in numba's one thread pool: no library GEMM. Two entries of the
table: "pointwise" (stride 1) and "subsample" (a stride: ResNet's projection shortcuts, run as the
stride-1 layer on a copy of every stride-th pixel).

A 1x1 convolution is out[n] (K, P) = W (K, C) @ x[n] (C, P) with P = H*W: the planes already are
the product's right operand, read in place (``gemm_6x2v_rows``), so nothing is copied but the
weights, packed once in panels of 6 output channels (C, 6). A task is one sample x one panel:
blocks of 6 channels x 2 LANES positions, each summed whole over C in registers; the positions
past the last whole block go through a zero-padded copy. The input gradient is the same product
with W transposed: dx[n] (C, P) = W' (C, K) @ dy[n] (K, P).

The weight gradient dW (K, C) = sum over n of dy[n] (K, P) @ x[n]' (P, C) sums along the planes'
contiguous axis, so it vectorises over positions instead: a task is 4 output x 3 input channels
(12 accumulators; per vector of positions 4 dy loads, 3 x loads, 12 FMAs) summed over every
sample inside the task, each sample's lanes folded into float64, so the result does not depend
on the thread count.
"""

import numba
import numpy as np
from numba import njit, prange

from ...workspace import scratch, worker_scratch
from ..conv_tiles import dot_4x3
from ..gemm import pack_columns
from ..microkernel import COLUMNS, ROWS, gemm_6x2v_rows, samples_per_fold
from ..simd import LANES, vload, vsum
from .bias import bias_grad


def _one_by_one(g):
    """None for a 1x1 layer without padding or groups, else why not."""
    if (g.kh, g.kw) != (1, 1):
        return f"a {g.kh}x{g.kw} kernel: it needs 1x1"
    if g.padding != (0, 0):
        return f"padding {g.padding}: it needs none"
    if g.groups != 1:
        return f"groups {g.groups}: it needs groups 1"
    return None


def accepts(g):
    """None for a 1x1, stride-1 layer without padding or groups, else why not."""
    reason = _one_by_one(g)
    if reason is None and g.stride != (1, 1):
        reason = f"stride {g.stride}: it needs stride 1 (a stride is 'subsample')"
    return reason


def accepts_strided(g):
    """None for a strided 1x1 layer without padding, dilation or groups, else why not."""
    reason = _one_by_one(g)
    if reason is None and g.stride == (1, 1):
        reason = "stride 1: nothing to subsample"
    if reason is None and g.dilation != (1, 1):
        reason = f"dilation {g.dilation}: it needs dilation 1"
    return reason


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _panels_times_planes(out, packed, src, b, has_bias, zero, tiles, tails):
    """out (N, M, P) (+ b (M,)) = the packed rows (M/6, D, 6) @ src[n] (D, P), sample by sample. A
    task is one sample x one panel; worker w sums a block in tiles[w] (6, COLUMNS) and reads the
    positions past the last whole block through tails[w] (D, COLUMNS), zero-padded."""
    n_batch, m, positions = out.shape
    panels, depth = packed.shape[0], packed.shape[1]
    whole = positions // COLUMNS * COLUMNS
    workers, tasks = tiles.shape[0], n_batch * panels
    for worker in prange(workers):
        tile, tail = tiles[worker], tails[worker]
        tail[:] = 0  # every task copies the same columns into it: the others stay zero
        for task in range(worker * tasks // workers, (worker + 1) * tasks // workers):
            n, panel = task // panels, task % panels
            i0 = panel * ROWS
            rows = min(ROWS, m - i0)
            weights, planes = packed[panel], src[n].reshape(-1)
            for q0 in range(0, positions, COLUMNS):
                tile[:] = 0
                if q0 < whole:
                    gemm_6x2v_rows(tile, weights, planes, q0, positions, depth)
                else:  # the last positions, through a zero-padded copy
                    for k in range(depth):
                        for q in range(positions - q0):
                            tail[k, q] = planes[k * positions + q0 + q]
                    gemm_6x2v_rows(tile, weights, tail, 0, COLUMNS, depth)
                count = min(COLUMNS, positions - q0)
                for r in range(rows):
                    bias = b[i0 + r] if has_bias else zero
                    dst, row = out[n, i0 + r, q0 : q0 + count], tile[r]
                    for q in range(count):
                        dst[q] = row[q] + bias


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _weight_grad(dw, dy, x, acc, total, workers, zero):
    """dw (K, C) += sum over samples and positions of dy (N, K, P) x (N, C, P)', in tasks of 4 output
    x 3 input channels (rows past K or C repeat the last one; their sums are dropped).

    Each worker takes every workers-th task and runs samples outermost, so one sample's planes
    serve all its tasks from the cache; a task's 12 accumulators wait in acc (T, 12 LANES) between
    samples, and every ``fold_samples`` samples go into the float64 total (T, 12). A task's sums run in
    the same order whatever the thread count."""
    k_out, channels = dw.shape
    n_batch, positions = dy.shape[0], dy.shape[2]
    whole = positions // LANES * LANES
    cblocks = -(-channels // 3)
    tasks = acc.shape[0]
    fold_samples = samples_per_fold(positions // LANES)
    for worker in prange(workers):
        for task in range(worker, tasks, workers):
            acc[task] = 0
            total[task] = 0
        for n in range(n_batch):
            for task in range(worker, tasks, workers):
                k0, c0 = task // cblocks * 4, task % cblocks * 3
                k1, k2, k3 = min(k0 + 1, k_out - 1), min(k0 + 2, k_out - 1), min(k0 + 3, k_out - 1)
                c1, c2 = min(c0 + 1, channels - 1), min(c0 + 2, channels - 1)
                g0, g1, g2, g3 = dy[n, k0], dy[n, k1], dy[n, k2], dy[n, k3]
                p0, p1, p2 = x[n, c0], x[n, c1], x[n, c2]
                a = acc[task]
                dot_4x3(a, g0, g1, g2, g3, p0, p1, p2, 0, 0, 0, whole)
                for q in range(whole, positions):  # the positions past the last whole vector
                    for r, g in enumerate((g0, g1, g2, g3)):
                        total[task, 3 * r] += g[q] * p0[q]
                        total[task, 3 * r + 1] += g[q] * p1[q]
                        total[task, 3 * r + 2] += g[q] * p2[q]
                if (n + 1) % fold_samples == 0 or n == n_batch - 1:
                    for i in range(12):
                        total[task, i] += vsum(vload(a, i * LANES))
                    acc[task] = 0
    for task in range(tasks):
        k0, c0 = task // cblocks * 4, task % cblocks * 3
        for r in range(min(4, k_out - k0)):
            for j in range(min(3, channels - c0)):
                dw[k0 + r, c0 + j] += total[task, 3 * r + j]


def _planes(a):
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def _product(out, w_rows, src, b, transpose, name):
    """out (N, M, H, W) = w_rows (M, D) (or its transpose) @ the planes of src (N, D, H, W) (+ b)."""
    depth = w_rows.shape[0] if transpose else w_rows.shape[1]
    m = out.shape[1]
    packed = scratch(name, (-(-m // ROWS), depth, ROWS), src.dtype)
    pack_columns(packed, w_rows if transpose else w_rows.T)
    has_bias = b is not None
    out_planes = out.reshape(out.shape[0], m, -1)
    workers, tiles = worker_scratch("pointwise.tiles", out.shape[0] * packed.shape[0], (ROWS, COLUMNS), src.dtype)
    tails = scratch("pointwise.tails", (workers, depth, COLUMNS), src.dtype)
    bias = b if has_bias else out_planes[0, 0, :1]
    _panels_times_planes(out_planes, packed, _planes(src), bias, has_bias, src.dtype.type(0), tiles, tails)


def forward(out, x, w, b, g):
    """out (N, K, H, W) = conv1x1(x (N, C, H, W), w (K, C, 1, 1)) + b (K,) or None."""
    _product(out, w.reshape(w.shape[0], w.shape[1]), x, b, False, "pointwise.w")


def backward(dx, dw, db, dy, x, w, g):
    """dx (overwritten), dw and db (accumulated) of a 1x1 convolution; each skipped if None."""
    w_kc = w.reshape(w.shape[0], w.shape[1])
    if db is not None:
        bias_grad(db, dy)
    if dw is not None:
        tasks = -(-w_kc.shape[0] // 4) * -(-w_kc.shape[1] // 3)
        acc = scratch("pointwise.acc", (tasks, 12 * LANES), x.dtype)
        total = scratch("pointwise.total", (tasks, 12), np.float64)
        workers = max(1, min(numba.get_num_threads(), tasks))
        _weight_grad(dw.reshape(w_kc.shape), _planes(dy), _planes(x), acc, total, workers, x.dtype.type(0))
    if dx is not None:
        _product(dx, w_kc, dy, None, True, "pointwise.wt")


def _subsampled(x, stride, name):
    """x[:, :, ::sh, ::sw] as a C-contiguous copy in workspace ``name``."""
    sub = x[:, :, :: stride[0], :: stride[1]]
    out = scratch(name, sub.shape, x.dtype)
    np.copyto(out, sub)
    return out


def forward_strided(out, x, w, b, g):
    """The strided 1x1 layer: the stride-1 one on every stride-th pixel of x."""
    forward(out, _subsampled(x, g.stride, "subsample.x"), w, b, g)


def backward_strided(dx, dw, db, dy, x, w, g):
    """Its gradients: those of the stride-1 layer; dx is zero at the pixels the forward skipped."""
    sub = _subsampled(x, g.stride, "subsample.x")
    d_sub = None if dx is None else scratch("subsample.dx", sub.shape, x.dtype)
    backward(d_sub, dw, db, dy, sub, w, g)
    if dx is not None:
        dx[...] = 0
        dx[:, :, :: g.stride[0], :: g.stride[1]] = d_sub


__all__ = ["accepts", "accepts_strided", "backward", "backward_strided", "forward", "forward_strided"]
