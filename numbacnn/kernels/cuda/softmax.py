"""Softmax over the class axis on CUDA: one thread per row (K is a classifier's few classes).

Shapes as in ``kernels/cpu/softmax.py``: x, out, y, dy, dx (N, K).
"""

import math

from numba import cuda

from .. import shared_math
from .launch import launch_1d, require_device

_row_max_and_exp_sum = cuda.jit(device=True)(shared_math.row_max_and_exp_sum)


@cuda.jit
def _softmax_fwd(out, x):
    n_batch, n_classes = x.shape
    for n in range(cuda.grid(1), n_batch, cuda.gridsize(1)):
        m, total = _row_max_and_exp_sum(x, n)
        for k in range(n_classes):
            out[n, k] = math.exp(x[n, k] - m) / total


@cuda.jit
def _softmax_bwd(dx, dy, y):
    n_batch, n_classes = y.shape
    for n in range(cuda.grid(1), n_batch, cuda.gridsize(1)):
        dot = 0.0
        for k in range(n_classes):
            dot += dy[n, k] * y[n, k]
        for k in range(n_classes):
            dx[n, k] = y[n, k] * (dy[n, k] - dot)


def softmax_forward(out, x):
    """out (N, K) = softmax(x) along K."""
    require_device("softmax_forward", out=out, x=x)
    launch_1d(_softmax_fwd, x.shape[0], out, x)


def softmax_backward(dx, dy, y):
    """dx (N, K) = y * (dy - sum_k dy * y), y the forward output (overwrites dx)."""
    require_device("softmax_backward", dx=dx, dy=dy, y=y)
    launch_1d(_softmax_bwd, y.shape[0], dx, dy, y)
