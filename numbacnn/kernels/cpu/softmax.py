"""Softmax over the class axis on the CPU (for probabilities at inference; training uses the fused
softmax cross-entropy in ``loss.py``).

Shapes: x, out, y, dy, dx (N, K). NaN in a row gives NaN in that row's output, as in PyTorch.
"""

import math

from numba import njit, prange

from .. import shared_math

_row_max_and_exp_sum = njit(inline="always")(shared_math.row_max_and_exp_sum)


@njit(parallel=True, cache=True)
def _softmax_fwd(out, x):
    n_batch, n_classes = x.shape
    for n in prange(n_batch):
        m, total = _row_max_and_exp_sum(x, n)
        for k in range(n_classes):
            out[n, k] = math.exp(x[n, k] - m) / total


@njit(parallel=True, cache=True)
def _softmax_bwd(dx, dy, y):
    n_batch, n_classes = y.shape
    for n in prange(n_batch):
        dot = 0.0
        for k in range(n_classes):
            dot += dy[n, k] * y[n, k]
        for k in range(n_classes):
            dx[n, k] = y[n, k] * (dy[n, k] - dot)


def softmax_forward(out, x):
    """out (N, K) = softmax(x) along K."""
    _softmax_fwd(out, x)


def softmax_backward(dx, dy, y):
    """dx (N, K) = y * (dy - sum_k dy * y), y the forward output (overwrites dx)."""
    _softmax_bwd(dx, dy, y)
