"""Softmax over the class axis on the CPU (for probabilities at inference; training uses the fused
softmax cross-entropy in ``loss.py``).

Shapes: x, out, y, dy, dx (N, K). NaN in a row gives NaN in that row's output, as in PyTorch.
"""

import math

from numba import njit, prange


@njit(parallel=True, cache=True)
def _softmax_fwd(out, x):
    n_batch, n_classes = x.shape
    for n in prange(n_batch):
        # Subtract the row maximum so exp never overflows; max(m, v) with v NaN keeps m, so take
        # the maximum by ">" from x[n, 0] and let a NaN flow through exp below.
        m = x[n, 0]
        for k in range(1, n_classes):
            if x[n, k] > m:
                m = x[n, k]
        total = 0.0
        for k in range(n_classes):
            total += math.exp(x[n, k] - m)
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
