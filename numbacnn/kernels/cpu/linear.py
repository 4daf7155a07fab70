"""Fully connected layer on the CPU: GEMMs on our micro-kernel (gemm.py), in numba's thread pool.

Shapes: x (N, IN), w (OUT, IN), b (OUT,) or None, out (N, OUT).
"""

from numba import njit, prange

from .gemm import matmul


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
    matmul(out, x, w.T)
    if b is not None:
        _add_bias_rows(out, b)


def linear_backward(dx, dw, db, dy, x, w):
    """dx (N, IN) = dy @ w; dw (OUT, IN) += dy.T @ x; db (OUT,) += sum_n dy. Each skipped if None."""
    if dx is not None:
        matmul(dx, dy, w)
    if dw is not None:
        matmul(dw, dy.T, x, accumulate=True)
    if db is not None:
        _add_column_sums(db, dy)
