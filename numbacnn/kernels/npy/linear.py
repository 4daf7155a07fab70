"""Fully connected layer in NumPy. Shapes: x (N, IN), w (OUT, IN), b (OUT,) or None, out (N, OUT)."""

import numpy as np


def linear_forward(out, x, w, b):
    """out (N, OUT) = x (N, IN) @ w.T + b."""
    np.matmul(x, w.T, out=out)
    if b is not None:
        out += b


def linear_backward(dx, dw, db, dy, x, w):
    """dx (N, IN) = dy @ w; dw (OUT, IN) += dy.T @ x; db (OUT,) += sum_n dy. Each skipped if None."""
    if dx is not None:
        np.matmul(dy, w, out=dx)
    if dw is not None:
        dw += dy.T @ x
    if db is not None:
        db += dy.sum(axis=0, dtype=np.float64).astype(db.dtype)
