"""Elementwise kernels in NumPy: activations, residual adds, dropout, copy and fill (any shape;
out, dx and the inputs share one shape). Constants are cast to the array dtype, as the compiled
kernels do, so float32 arithmetic stays float32."""

import numpy as np

from ..workspace import scratch


def _zero_where_not_positive(out, v, where_from):
    """out = v, with 0 where where_from <= 0 (a NaN there keeps v, as the compiled kernels do)."""
    # Taken first (out may be where_from), into reused memory (a fresh mask faults its pages in).
    not_positive = np.less_equal(where_from, 0, out=scratch("npy.mask", where_from.shape, np.bool_))
    np.copyto(out, v)
    np.copyto(out, 0, where=not_positive)


def relu_forward(out, x):
    """out = max(x, 0) (a NaN stays NaN)."""
    np.maximum(x, x.dtype.type(0), out=out)


def relu_backward(dx, dy, y):
    """dx = dy where the forward output y > 0, else 0."""
    _zero_where_not_positive(dx, dy, y)


def leaky_relu_forward(out, x, negative_slope):
    np.copyto(out, np.where(x <= 0, x * x.dtype.type(negative_slope), x))


def leaky_relu_backward(dx, dy, x, negative_slope):
    np.copyto(dx, np.where(x <= 0, dy * dy.dtype.type(negative_slope), dy))


def elu_forward(out, x, alpha):
    t = x.dtype.type
    np.copyto(out, np.where(x <= 0, t(alpha) * (np.exp(np.minimum(x, t(0))) - t(1)), x))


def elu_backward(dx, dy, x, y, alpha):
    """Uses both the input x and the output y of the forward pass."""
    np.copyto(dx, np.where(x <= 0, dy * (y + dy.dtype.type(alpha)), dy))


def sigmoid_forward(out, x):
    t = x.dtype.type
    e = np.exp(-np.abs(x))  # never overflows
    np.copyto(out, np.where(x >= 0, t(1) / (t(1) + e), e / (t(1) + e)))


def sigmoid_backward(dx, dy, y):
    """y is the forward output: dsigmoid = y (1 - y)."""
    np.copyto(dx, dy * y * (y.dtype.type(1) - y))


def tanh_forward(out, x):
    np.tanh(x, out=out)


def tanh_backward(dx, dy, y):
    """y is the forward output: dtanh = 1 - y^2."""
    np.copyto(dx, dy * (y.dtype.type(1) - y * y))


def add_forward(out, a, b):
    """out = a + b (also used to sum two gradient branches)."""
    np.add(a, b, out=out)


def add_relu_forward(out, a, b):
    """out = max(a + b, 0): the fused residual join of a ResNet block."""
    np.add(a, b, out=out)
    np.maximum(out, out.dtype.type(0), out=out)


def add_relu_backward(dx, dy, y):
    """dx = dy where y = add_relu_forward(...) > 0: the gradient of both summands."""
    _zero_where_not_positive(dx, dy, y)


def hash_bits_at(seed, indices):
    """shared_math.hash_bits(seed, i) for every i of ``indices`` (any shape), vectorised: the same
    splitmix64 steps on uint64 arrays (which wrap silently, where scalars warn)."""
    u = np.uint64
    seeds = np.full(np.shape(indices), seed, np.uint64)
    z = seeds * u(0x9E3779B97F4A7C15) + np.asarray(indices, np.uint64) + u(0x632BE59BD9B4E019)
    z = (z ^ (z >> u(30))) * u(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u(27))) * u(0x94D049BB133111EB)
    z = z ^ (z >> u(31))
    return z >> u(40)


def uniform_hashes(seed, count):
    """shared_math.uniform_hash(seed, i) for i < count, vectorised."""
    return hash_bits_at(seed, np.arange(count, dtype=np.uint64)).astype(np.float64) * (1.0 / 16777216.0)


def dropout_forward(out, mask, x, p, seed):
    """Inverted dropout: mask = 1/(1-p) where hash(seed, i) >= p, else 0; out = x * mask."""
    t = x.dtype.type
    scale = t(1.0 / (1.0 - p)) if p < 1 else t(0)
    keep = (uniform_hashes(seed, x.size) >= t(p)).reshape(x.shape)
    np.copyto(mask, np.where(keep, scale, t(0)))
    np.multiply(x, mask, out=out)


def dropout_backward(dx, dy, mask):
    np.multiply(dy, mask, out=dx)


def copy(out, x):
    """out = x (same shape)."""
    np.copyto(out, x)


def fill(out, value):
    """out[...] = value."""
    out[...] = out.dtype.type(value)
