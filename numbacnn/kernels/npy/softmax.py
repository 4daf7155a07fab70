"""Softmax along the last axis in NumPy. Shapes: out, x, dx, dy, y (N, K)."""

import numpy as np


def softmax_forward(out, x):
    """out (N, K) = softmax(x) along K."""
    e = np.exp((x - x.max(axis=1, keepdims=True)).astype(np.float64))
    out[...] = e / e.sum(axis=1, keepdims=True)


def softmax_backward(dx, dy, y):
    """dx (N, K) = y * (dy - sum_k dy * y), y the forward output (overwrites dx)."""
    dot = (dy.astype(np.float64) * y).sum(axis=1, keepdims=True)
    dx[...] = y * (dy - dot)
