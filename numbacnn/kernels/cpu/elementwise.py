"""Elementwise kernels on the CPU: activations, residual add(+ReLU), dropout, copy, fill.

Every kernel takes C-contiguous arrays of one shape (any rank) and works on flat views, in
parallel over disjoint elements. Backward kernels overwrite dx. Scalars (slopes, alpha, p) are
cast to the array dtype before the loop so float32 data never widens to float64.
"""

import math

from numba import njit, prange

from .. import shared_math

_math = shared_math.compiled("cpu", njit(inline="always"))
_sigmoid = _math.sigmoid
_uniform_hash = _math.uniform_hash


def _flat(*arrays):
    return tuple(a.reshape(-1) for a in arrays)


@njit(parallel=True, cache=True)
def _relu_fwd(out, x):
    for i in prange(x.size):
        out[i] = 0 if x[i] <= 0 else x[i]


@njit(parallel=True, cache=True)
def _relu_bwd(dx, dy, y):
    for i in prange(y.size):
        dx[i] = 0 if y[i] <= 0 else dy[i]


@njit(parallel=True, cache=True)
def _leaky_fwd(out, x, slope):
    for i in prange(x.size):
        out[i] = x[i] * slope if x[i] <= 0 else x[i]


@njit(parallel=True, cache=True)
def _leaky_bwd(dx, dy, x, slope):
    for i in prange(x.size):
        dx[i] = dy[i] * slope if x[i] <= 0 else dy[i]


@njit(parallel=True, cache=True)
def _elu_fwd(out, x, alpha):
    for i in prange(x.size):
        out[i] = alpha * (math.exp(x[i]) - 1) if x[i] <= 0 else x[i]


@njit(parallel=True, cache=True)
def _elu_bwd(dx, dy, x, y, alpha):
    # For x <= 0, d/dx alpha*(exp(x)-1) = y + alpha: no second exp needed.
    for i in prange(x.size):
        dx[i] = dy[i] * (y[i] + alpha) if x[i] <= 0 else dy[i]


@njit(parallel=True, cache=True)
def _sigmoid_fwd(out, x, one):
    for i in prange(x.size):
        out[i] = _sigmoid(x[i], one)


@njit(parallel=True, cache=True)
def _sigmoid_bwd(dx, dy, y):
    for i in prange(y.size):
        dx[i] = dy[i] * y[i] * (1 - y[i])


@njit(parallel=True, cache=True)
def _tanh_fwd(out, x):
    for i in prange(x.size):
        out[i] = math.tanh(x[i])


@njit(parallel=True, cache=True)
def _tanh_bwd(dx, dy, y):
    for i in prange(y.size):
        dx[i] = dy[i] * (1 - y[i] * y[i])


@njit(parallel=True, cache=True)
def _add(out, a, b):
    for i in prange(a.size):
        out[i] = a[i] + b[i]


@njit(parallel=True, cache=True)
def _add_relu(out, a, b):
    for i in prange(a.size):
        s = a[i] + b[i]
        out[i] = 0 if s <= 0 else s


@njit(parallel=True, cache=True)
def _dropout_fwd(out, mask, x, p, scale, seed):
    for i in prange(x.size):
        keep = _uniform_hash(seed, i) >= p
        mask[i] = scale if keep else 0
        out[i] = x[i] * mask[i]


@njit(parallel=True, cache=True)
def _mul(out, a, b):
    for i in prange(a.size):
        out[i] = a[i] * b[i]


@njit(parallel=True, cache=True)
def _copy(out, x):
    for i in prange(x.size):
        out[i] = x[i]


@njit(parallel=True, cache=True)
def _fill(out, value):
    for i in prange(out.size):
        out[i] = value


def relu_forward(out, x):
    """out = max(x, 0)."""
    _relu_fwd(*_flat(out, x))


def relu_backward(dx, dy, y):
    """dx = dy where the forward output y > 0, else 0."""
    _relu_bwd(*_flat(dx, dy, y))


def leaky_relu_forward(out, x, negative_slope):
    _leaky_fwd(*_flat(out, x), x.dtype.type(negative_slope))


def leaky_relu_backward(dx, dy, x, negative_slope):
    _leaky_bwd(*_flat(dx, dy, x), x.dtype.type(negative_slope))


def elu_forward(out, x, alpha):
    _elu_fwd(*_flat(out, x), x.dtype.type(alpha))


def elu_backward(dx, dy, x, y, alpha):
    """Uses both the input x and the output y of the forward pass."""
    _elu_bwd(*_flat(dx, dy, x, y), x.dtype.type(alpha))


def sigmoid_forward(out, x):
    _sigmoid_fwd(*_flat(out, x), x.dtype.type(1))


def sigmoid_backward(dx, dy, y):
    """y is the forward output: dsigmoid = y (1 - y)."""
    _sigmoid_bwd(*_flat(dx, dy, y))


def tanh_forward(out, x):
    _tanh_fwd(*_flat(out, x))


def tanh_backward(dx, dy, y):
    """y is the forward output: dtanh = 1 - y^2."""
    _tanh_bwd(*_flat(dx, dy, y))


def add_forward(out, a, b):
    """out = a + b (also used to sum two gradient branches)."""
    _add(*_flat(out, a, b))


def add_relu_forward(out, a, b):
    """out = max(a + b, 0): the fused residual join of a ResNet block."""
    _add_relu(*_flat(out, a, b))


def add_relu_backward(dx, dy, y):
    """dx = dy where y = add_relu_forward(...) > 0: the gradient of both summands."""
    _relu_bwd(*_flat(dx, dy, y))


def dropout_forward(out, mask, x, p, seed):
    """Inverted dropout: mask = 1/(1-p) where hash(seed, i) >= p, else 0; out = x * mask."""
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    _dropout_fwd(*_flat(out, mask, x), x.dtype.type(p), x.dtype.type(scale), seed)


def dropout_backward(dx, dy, mask):
    _mul(*_flat(dx, dy, mask))


def copy(out, x):
    """out = x (same shape)."""
    _copy(*_flat(out, x))


def fill(out, value):
    """out[...] = value."""
    _fill(out.reshape(-1), out.dtype.type(value))
