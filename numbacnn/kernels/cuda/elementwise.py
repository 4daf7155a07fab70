"""Elementwise kernels on CUDA: activations, residual add(+ReLU), dropout, copy, fill.

Twins of ``kernels/cpu/elementwise.py``: C-contiguous arrays of one shape (any rank) handled as
flat views by grid-stride loops. Scalars, and the constants 0 and 1, are passed in the array dtype:
a literal ``0`` or ``1.0`` in a kernel would promote float32 arithmetic to float64, which consumer
GPUs run at a fraction of the float32 rate (``python -m numbacnn.tools.ptx`` checks this).
Dropout uses the same counter-based hash as the CPU (``shared_math.py``), so both backends draw the
same mask for the same seed.
"""

import math
import warnings

from numba import cuda

from .. import shared_math
from .launch import flat, launch_1d, require_device

_math = shared_math.compiled("cuda", cuda.jit(device=True))
_sigmoid = _math.sigmoid
_uniform_hash = _math.uniform_hash


@cuda.jit
def _relu_fwd(out, x, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = zero if x[i] <= 0 else x[i]


@cuda.jit
def _relu_bwd(dx, dy, y, zero):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        dx[i] = zero if y[i] <= 0 else dy[i]


@cuda.jit
def _leaky_fwd(out, x, slope):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = x[i] * slope if x[i] <= 0 else x[i]


@cuda.jit
def _leaky_bwd(dx, dy, x, slope):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        dx[i] = dy[i] * slope if x[i] <= 0 else dy[i]


@cuda.jit
def _elu_fwd(out, x, alpha, one):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = alpha * (math.exp(x[i]) - one) if x[i] <= 0 else x[i]


@cuda.jit
def _elu_bwd(dx, dy, x, y, alpha):
    # For x <= 0, d/dx alpha*(exp(x)-1) = y + alpha: no second exp needed.
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        dx[i] = dy[i] * (y[i] + alpha) if x[i] <= 0 else dy[i]


@cuda.jit
def _sigmoid_fwd(out, x, one):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = _sigmoid(x[i], one)


@cuda.jit
def _sigmoid_bwd(dx, dy, y, one):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        dx[i] = dy[i] * y[i] * (one - y[i])


@cuda.jit
def _tanh_fwd(out, x):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = math.tanh(x[i])


@cuda.jit
def _tanh_bwd(dx, dy, y, one):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        dx[i] = dy[i] * (one - y[i] * y[i])


@cuda.jit
def _add(out, a, b):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        out[i] = a[i] + b[i]


@cuda.jit
def _add_relu(out, a, b, zero):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        s = a[i] + b[i]
        out[i] = zero if s <= 0 else s


@cuda.jit
def _dropout_fwd(out, mask, x, p, scale, seed, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        keep = _uniform_hash(seed, i) >= p
        mask[i] = scale if keep else zero
        out[i] = x[i] * mask[i]


@cuda.jit
def _mul(out, a, b):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        out[i] = a[i] * b[i]


@cuda.jit
def _copy(out, x):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = x[i]


@cuda.jit
def _fill(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


def _run(kernel, where, arrays, *scalars):
    """Check that every named array is on the GPU, then launch over their flat views."""
    require_device(where, **arrays)
    views = [flat(a) for a in arrays.values()]
    launch_1d(kernel, views[0].size, *views, *scalars)


def relu_forward(out, x):
    """out = max(x, 0)."""
    _run(_relu_fwd, "relu_forward", dict(out=out, x=x), x.dtype.type(0))


def relu_backward(dx, dy, y):
    """dx = dy where the forward output y > 0, else 0."""
    _run(_relu_bwd, "relu_backward", dict(dx=dx, dy=dy, y=y), y.dtype.type(0))


def leaky_relu_forward(out, x, negative_slope):
    _run(_leaky_fwd, "leaky_relu_forward", dict(out=out, x=x), x.dtype.type(negative_slope))


def leaky_relu_backward(dx, dy, x, negative_slope):
    _run(_leaky_bwd, "leaky_relu_backward", dict(dx=dx, dy=dy, x=x), x.dtype.type(negative_slope))


def elu_forward(out, x, alpha):
    _run(_elu_fwd, "elu_forward", dict(out=out, x=x), x.dtype.type(alpha), x.dtype.type(1))


def elu_backward(dx, dy, x, y, alpha):
    """Uses both the input x and the output y of the forward pass."""
    _run(_elu_bwd, "elu_backward", dict(dx=dx, dy=dy, x=x, y=y), x.dtype.type(alpha))


def sigmoid_forward(out, x):
    _run(_sigmoid_fwd, "sigmoid_forward", dict(out=out, x=x), x.dtype.type(1))


def sigmoid_backward(dx, dy, y):
    """y is the forward output: dsigmoid = y (1 - y)."""
    _run(_sigmoid_bwd, "sigmoid_backward", dict(dx=dx, dy=dy, y=y), y.dtype.type(1))


def tanh_forward(out, x):
    _run(_tanh_fwd, "tanh_forward", dict(out=out, x=x))


def tanh_backward(dx, dy, y):
    """y is the forward output: dtanh = 1 - y^2."""
    _run(_tanh_bwd, "tanh_backward", dict(dx=dx, dy=dy, y=y), y.dtype.type(1))


def add_forward(out, a, b):
    """out = a + b (also used to sum two gradient branches)."""
    _run(_add, "add_forward", dict(out=out, a=a, b=b))


def add_relu_forward(out, a, b):
    """out = max(a + b, 0): the fused residual join of a ResNet block."""
    _run(_add_relu, "add_relu_forward", dict(out=out, a=a, b=b), a.dtype.type(0))


def add_relu_backward(dx, dy, y):
    """dx = dy where y = add_relu_forward(...) > 0: the gradient of both summands."""
    _run(_relu_bwd, "add_relu_backward", dict(dx=dx, dy=dy, y=y), y.dtype.type(0))


def dropout_forward(out, mask, x, p, seed):
    """Inverted dropout: mask = 1/(1-p) where hash(seed, i) >= p, else 0; out = x * mask."""
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    # The hash wraps uint64 products on purpose; in the simulator they are numpy scalars, which
    # warn about that wrap-around from the simulator's threads (a compiled kernel does not).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        _run(
            _dropout_fwd,
            "dropout_forward",
            dict(out=out, mask=mask, x=x),
            x.dtype.type(p),
            x.dtype.type(scale),
            seed,
            x.dtype.type(0),
        )


def dropout_backward(dx, dy, mask):
    _run(_mul, "dropout_backward", dict(dx=dx, dy=dy, mask=mask))


def copy(out, x):
    """out = x (same shape)."""
    _run(_copy, "copy", dict(out=out, x=x))


def fill(out, value):
    """out[...] = value."""
    _run(_fill, "fill", dict(out=out), out.dtype.type(value))
