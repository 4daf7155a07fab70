"""Fully connected layer on CUDA: the tiled GEMM of ``gemm.py`` with the bias in its epilogue.

Shapes: x (N, IN), w (OUT, IN), b (OUT,) or None, out (N, OUT).
"""

from numba import cuda

from .gemm import BIAS_COLUMN, BIAS_NONE, gemm
from .launch import launch_1d, require_device, view


def _as4d(a):
    return view(a, 1, 1, a.shape[0], a.shape[1])


@cuda.jit
def _column_sums(db, dy):
    """db (OUT,) += column sums of dy (N, OUT), one thread per column, float64 accumulator."""
    n_batch, n_out = dy.shape
    for k in range(cuda.grid(1), n_out, cuda.gridsize(1)):
        acc = 0.0
        for n in range(n_batch):
            acc += dy[n, k]
        db[k] += acc


def linear_forward(out, x, w, b):
    """out (N, OUT) = x (N, IN) @ w.T + b."""
    require_device("linear_forward", out=out, x=x, w=w, b=b)
    gemm(_as4d(out), _as4d(x), _as4d(w), trans_b=True, bias=b, bias_mode=BIAS_NONE if b is None else BIAS_COLUMN)


def linear_backward(dx, dw, db, dy, x, w):
    """dx (N, IN) = dy @ w; dw (OUT, IN) += dy.T @ x; db (OUT,) += sum_n dy. Each skipped if None."""
    require_device("linear_backward", dx=dx, dw=dw, db=db, dy=dy, x=x, w=w)
    if dx is not None:
        gemm(_as4d(dx), _as4d(dy), _as4d(w))
    if dw is not None:
        gemm(_as4d(dw), _as4d(dy), _as4d(x), trans_a=True, accumulate=True)
    if db is not None:
        launch_1d(_column_sums, dy.shape[1], db, dy)
