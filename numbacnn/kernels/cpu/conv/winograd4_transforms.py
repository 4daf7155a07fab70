"""The transforms of Winograd's F(4x4, 3x3) (Lavin & Gray 2016), for winograd4_channels.py:

    B' = [[4, 0, -5, 0, 1, 0],        G = [[1/4, 0, 0],           A' = [[1, 1, 1, 1, 1, 0],
          [0, -4, -4, 1, 1, 0],            [-1/6, -1/6, -1/6],          [0, 1, -1, 2, -2, 0],
          [0, 4, -4, -1, 1, 0],            [-1/6, 1/6, -1/6],           [0, 1, 1, 4, 4, 0],
          [0, -2, -1, 2, 1, 0],            [1/24, 1/12, 1/6],           [0, 1, -1, 8, -8, 1]]
          [0, 2, -1, -2, 1, 0],            [1/24, -1/12, 1/6],
          [0, 4, 0, -5, 0, 1]]             [0, 0, 1]]

The input and output transforms run on vectors of channels, each as two passes of the 1-D
transform (columns, then rows) through a small scratch in L1; the weights' in float64.
"""

import numpy as np
from numba import njit

from ..simd import LANES, vadd, vfma, vload, vmul, vsplat, vstore, vsub


@njit(inline="always")
def _g_column(g0, g1, g2):
    """G (g0, g1, g2)' in float64."""
    g0, g1, g2 = np.float64(g0), np.float64(g1), np.float64(g2)
    even, odd = g0 + g2, g1
    return (
        0.25 * g0,
        -(even + odd) / 6.0,
        -(even - odd) / 6.0,
        g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
        g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
        g2,
    )


@njit(inline="always")
def _tap(w, k, c, i, j, transpose_flip):
    """Tap (i, j) of weight w'[k, c]: w[k, c, i, j], or w[c, k, 2 - i, 2 - j] (transposed, flipped)."""
    return w[c, k, 2 - i, 2 - j] if transpose_flip else w[k, c, i, j]


@njit(inline="always")
def transformed_weight(w, k, c, transpose_flip):
    """G w'[k, c] G' (6x6, row-major, as 36 float64): w' = w (K, C, 3, 3), or with
    ``transpose_flip`` w'[a, b] = w[b, a] flipped."""
    # Column j of G g is G times kernel column j; row i of the result is G times row i of G g.
    a = _g_column(_tap(w, k, c, 0, 0, transpose_flip), _tap(w, k, c, 1, 0, transpose_flip),
                  _tap(w, k, c, 2, 0, transpose_flip))  # fmt: skip
    b = _g_column(_tap(w, k, c, 0, 1, transpose_flip), _tap(w, k, c, 1, 1, transpose_flip),
                  _tap(w, k, c, 2, 1, transpose_flip))  # fmt: skip
    e = _g_column(_tap(w, k, c, 0, 2, transpose_flip), _tap(w, k, c, 1, 2, transpose_flip),
                  _tap(w, k, c, 2, 2, transpose_flip))  # fmt: skip
    return (
        _g_column(a[0], b[0], e[0]) + _g_column(a[1], b[1], e[1]) + _g_column(a[2], b[2], e[2])
        + _g_column(a[3], b[3], e[3]) + _g_column(a[4], b[4], e[4]) + _g_column(a[5], b[5], e[5])
    )  # fmt: skip


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _input_pass(dst, dst_at, dst_step, src, src_at, src_step, four, minus_four, minus_five, two):
    """dst.flat[dst_at + i dst_step] = (B' d)[i] for i < 6, d[i] the vector at src.flat[src_at +
    i src_step]."""
    d0, d1, d2 = vload(src, src_at), vload(src, src_at + src_step), vload(src, src_at + 2 * src_step)
    d3, d4, d5 = vload(src, src_at + 3 * src_step), vload(src, src_at + 4 * src_step), vload(src, src_at + 5 * src_step)
    a = vfma(minus_four, d2, d4)  # d4 - 4 d2
    b = vfma(minus_four, d1, d3)  # d3 - 4 d1
    e = vsub(d4, d2)
    f = vmul(two, vsub(d3, d1))
    vstore(dst, dst_at, vfma(four, d0, vfma(minus_five, d2, d4)))
    vstore(dst, dst_at + dst_step, vadd(a, b))
    vstore(dst, dst_at + 2 * dst_step, vsub(a, b))
    vstore(dst, dst_at + 3 * dst_step, vadd(e, f))
    vstore(dst, dst_at + 4 * dst_step, vsub(e, f))
    vstore(dst, dst_at + 5 * dst_step, vfma(four, d1, vfma(minus_five, d3, d5)))


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def input_transform(v, at, plane, xt, base, row, col, channels):
    """v.flat[at + t plane + c] = (B' d B)[t] (t = 6 i + j) for c < channels (whole vectors), d the
    6x6 inputs at xt.flat[base + i row + j col + c]. The columns are transformed into v, then each
    row of v in place."""
    value = xt.dtype.type
    four, minus_four, minus_five, two = vsplat(value(4)), vsplat(value(-4)), vsplat(value(-5)), vsplat(value(2))
    for cv in range(0, channels, LANES):
        for j in range(6):  # column j of d -> column j of B' d
            _input_pass(v, at + j * plane + cv, 6 * plane, xt, base + j * col + cv, row,
                        four, minus_four, minus_five, two)  # fmt: skip
        for i in range(6):  # row i of B' d -> row i of B' d B
            s = at + 6 * i * plane + cv
            _input_pass(v, s, plane, v, s, plane, four, minus_four, minus_five, two)


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _output_pass(dst, dst_at, dst_step, src, src_at, src_step, two, four, eight):
    """dst.flat[dst_at + i dst_step] = (A' m)[i] for i < 4, m[i] the vector at src.flat[src_at +
    i src_step] (i < 6)."""
    m0, m1, m2 = vload(src, src_at), vload(src, src_at + src_step), vload(src, src_at + 2 * src_step)
    m3, m4, m5 = vload(src, src_at + 3 * src_step), vload(src, src_at + 4 * src_step), vload(src, src_at + 5 * src_step)
    p, q, r, s = vadd(m1, m2), vsub(m1, m2), vadd(m3, m4), vsub(m3, m4)
    vstore(dst, dst_at, vadd(vadd(m0, p), r))
    vstore(dst, dst_at + dst_step, vfma(two, s, q))
    vstore(dst, dst_at + 2 * dst_step, vfma(four, r, p))
    vstore(dst, dst_at + 3 * dst_step, vadd(vfma(eight, s, q), m5))


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def output_transform(y, m, at, plane, b, has_bias, k_out, z):
    """y (16, K) = the 4x4 outputs A' m A (+ b) of one tile (output i, j at y[4 i + j]), its 36
    products at m.flat[at + t plane + k] (t = 6 i + j). Each row of m is transformed into z (6 x 4
    vectors), then each column of z into y."""
    value = y.dtype.type
    two, four, eight = vsplat(value(2)), vsplat(value(4)), vsplat(value(8))
    yf = y.reshape(-1)
    for kv in range(0, k_out, LANES):
        for i in range(6):  # row i of m -> row i of m A
            _output_pass(z, 4 * i * LANES, LANES, m, at + 6 * i * plane + kv, plane, two, four, eight)
        for j in range(4):  # column j of m A -> column j of A' m A
            _output_pass(yf, j * k_out + kv, 4 * k_out, z, j * LANES, 4 * LANES, two, four, eight)
        if has_bias:
            bias = vload(b, kv)
            for t in range(16):
                vstore(yf, t * k_out + kv, vadd(vload(yf, t * k_out + kv), bias))


__all__ = ["input_transform", "output_transform", "transformed_weight"]
