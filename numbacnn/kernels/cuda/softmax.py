"""Softmax over the class axis on CUDA: one thread per row (K is a classifier's few classes).

Shapes as in ``kernels/cpu/softmax.py``: x, out, y, dy, dx (N, K).
"""

from numba import cuda

from .. import shared_math
from .launch import launch_1d, require_device

_math = shared_math.compiled("cuda", cuda.jit(device=True))
_softmax_row = _math.softmax_row
_softmax_grad_row = _math.softmax_grad_row


@cuda.jit
def _softmax_fwd(out, x):
    n_batch = x.shape[0]
    for n in range(cuda.grid(1), n_batch, cuda.gridsize(1)):
        _softmax_row(out, x, n)


@cuda.jit
def _softmax_bwd(dx, dy, y):
    n_batch = y.shape[0]
    for n in range(cuda.grid(1), n_batch, cuda.gridsize(1)):
        _softmax_grad_row(dx, dy, y, n)


def softmax_forward(out, x):
    """out (N, K) = softmax(x) along K."""
    require_device("softmax_forward", out=out, x=x)
    launch_1d(_softmax_fwd, x.shape[0], out, x)


def softmax_backward(dx, dy, y):
    """dx (N, K) = y * (dy - sum_k dy * y), y the forward output (overwrites dx)."""
    require_device("softmax_backward", dx=dx, dy=dy, y=y)
    launch_1d(_softmax_bwd, y.shape[0], dx, dy, y)
