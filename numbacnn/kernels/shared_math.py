"""Scalar helpers written once in plain Python and compiled per target.

``kernels.cpu`` compiles them with ``njit(inline="always")`` and ``kernels.cuda`` with
``cuda.jit(device=True)``, so both backends compute bit-for-bit the same dropout mask and the
same activation formulas. Use only ``math`` and numpy scalar casts here: both targets support them.
"""

import math

import numpy as np


def sigmoid(v, one):
    """1 / (1 + exp(-v)); ``one`` is 1 in v's dtype (a literal 1.0 would compute in float64)."""
    # Branch on the sign so that exp never overflows.
    if v >= 0:
        return one / (one + math.exp(-v))
    e = math.exp(v)
    return e / (one + e)


def uniform_hash(seed, index):
    """A counter-based uniform number in [0, 1) from (seed, index): the splitmix64 finaliser.

    Everything is uint64 on purpose: numba types ``int64 * uint64`` as float64, which would make
    the hash depend on rounding. uint64 arithmetic wraps modulo 2**64 on both targets.
    """
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(index) + np.uint64(0x632BE59BD9B4E019)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    # The top 24 bits give a float that float32 represents exactly.
    return np.float64(z >> np.uint64(40)) * (1.0 / 16777216.0)


def row_max_and_exp_sum(x, n):
    """(m, sum_k exp(x[n, k] - m)) with m the maximum of row n of x (N, K): the two reductions of
    a stable softmax (subtracting the maximum keeps exp from overflowing). A NaN in the row is
    never the maximum by ">", so it reaches the sum through exp and the row's result is NaN."""
    m = x[n, 0]
    for k in range(1, x.shape[1]):
        if x[n, k] > m:
            m = x[n, k]
    total = 0.0
    for k in range(x.shape[1]):
        total += math.exp(x[n, k] - m)
    return m, total


# Padding modes of pad2d (Conv2d's padding_mode), as the integers the kernels take.
PAD_ZEROS, PAD_REFLECT, PAD_REPLICATE, PAD_CIRCULAR = 0, 1, 2, 3


def pad_source(i, size, mode):
    """The index in [0, size) whose value the padded position ``i`` (which may lie outside)
    holds, or -1 for a zero (PAD_ZEROS outside). Reflect mirrors without repeating the edge
    (PyTorch's "reflect"), replicate repeats the edge, circular wraps around."""
    if 0 <= i < size:
        return i
    if mode == 0:
        return -1
    if mode == 1:
        return -i if i < 0 else 2 * (size - 1) - i
    if mode == 2:
        return 0 if i < 0 else size - 1
    return i % size


def pool_divisor(oy, ox, kh, kw, sh, sw, ph, pw, height, width, include_pad):
    """The divisor of average-pooling window (oy, ox), as PyTorch computes it: the window clipped
    to the padded input, counting the padding (``include_pad``) or only the real pixels. Windows
    that ceil_mode adds may run past the padding: the part outside never counts."""
    y0, x0 = oy * sh - ph, ox * sw - pw
    y1, x1 = min(y0 + kh, height + ph), min(x0 + kw, width + pw)
    if include_pad:
        return (y1 - y0) * (x1 - x0)
    return (min(y1, height) - max(y0, 0)) * (min(x1, width) - max(x0, 0))
