"""Softmax over the class axis on the CPU (for probabilities at inference; training uses the fused
softmax cross-entropy in ``loss.py``).

Shapes: x, out, y, dy, dx (N, K). NaN in a row gives NaN in that row's output, as in PyTorch.
"""

from numba import njit, prange

from .. import shared_math

_math = shared_math.compiled("cpu", njit(inline="always"))
_softmax_row = _math.softmax_row
_softmax_grad_row = _math.softmax_grad_row


@njit(parallel=True, cache=True)
def _softmax_fwd(out, x):
    n_batch = x.shape[0]
    for n in prange(n_batch):
        _softmax_row(out, x, n)


@njit(parallel=True, cache=True)
def _softmax_bwd(dx, dy, y):
    n_batch = y.shape[0]
    for n in prange(n_batch):
        _softmax_grad_row(dx, dy, y, n)


def softmax_forward(out, x):
    """out (N, K) = softmax(x) along K."""
    _softmax_fwd(out, x)


def softmax_backward(dx, dy, y):
    """dx (N, K) = y * (dy - sum_k dy * y), y the forward output (overwrites dx)."""
    _softmax_bwd(dx, dy, y)
