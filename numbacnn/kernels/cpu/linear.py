"""Fully connected layer on the CPU: GEMMs through ``np.matmul`` (OpenBLAS) with ``out=``.

Shapes: x (N, IN), w (OUT, IN), b (OUT,) or None, out (N, OUT).
"""

import numpy as np
from numba import njit, prange

from ..workspace import scratch


@njit(parallel=True, cache=True)
def _add_bias_rows(out, b):
    """out (N, OUT) += b (OUT,) on every row."""
    for n in prange(out.shape[0]):
        for k in range(out.shape[1]):
            out[n, k] += b[k]


@njit(cache=True)
def _add_column_sums(db, dy):
    """db (OUT,) += column sums of dy (N, OUT); float64 accumulators on purpose."""
    n_batch, n_out = dy.shape
    for k in range(n_out):
        acc = 0.0
        for n in range(n_batch):
            acc += dy[n, k]
        db[k] += acc


def linear_forward(out, x, w, b):
    """out (N, OUT) = x (N, IN) @ w.T + b."""
    np.matmul(x, w.T, out=out)
    if b is not None:
        _add_bias_rows(out, b)


def linear_backward(dx, dw, db, dy, x, w):
    """dx (N, IN) = dy @ w; dw (OUT, IN) += dy.T @ x; db (OUT,) += sum_n dy. Each skipped if None."""
    if dx is not None:
        np.matmul(dy, w, out=dx)
    if dw is not None:
        dw_tmp = scratch("linear.dw", dw.shape, dw.dtype)
        np.matmul(dy.T, x, out=dw_tmp)
        dw += dw_tmp
    if db is not None:
        _add_column_sums(db, dy)
