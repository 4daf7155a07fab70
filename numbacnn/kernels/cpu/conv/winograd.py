"""Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016) for stride-1 3x3 layers: the table's
"winograd", for the forward and the input gradient.

A 2x2 output tile comes from a 4x4 input tile d as Y = A' [(G g G') . (B' d B)] A: 16 products
per pair of input and output channels instead of 36. Summed over input channels, the products are
16 matrix products M[t] (K x tiles) = U[t] (K x C) @ V[t] (C x tiles), t over the 16 positions of
the transformed tile, with U = G g G' the transformed weights (once per call) and V = B' d B the
transformed input. The tiles are the vector axis, as in direct_positions.py, so the NCHW planes
need no transpose:

* a task is a run of tile rows (of one sample or several: an 8x8 plane has 4x4 tiles); per input
  channel and tile row, the 4 padded input rows are split into even and odd columns, so that the 16
  entries of LANES consecutive tiles are 16 contiguous vector loads (``_input_row``);
* the 16 products run on the GEMM tile (microkernel.gemm_6x2v_rows_to: 6 output channels x 2
  vectors of tiles), straight into the task's M;
* the output transform reads 16 vectors of M per run of tiles and writes the 2x2 outputs.
Everything between the input and the output stays in the worker's scratch.

The input gradient is the same algorithm on dy padded by 2 - p, with the weights transposed and
flipped. Shapes: x (N, C, H, W), w (K, C, 3, 3), b (K,) or None, out (N, K, OH, OW).
"""

import numpy as np
from numba import njit, prange

from ...workspace import scratch, worker_scratch
from ..microkernel import COLUMNS, ROWS, gemm_6x2v_rows_to
from ..simd import LANES, vadd, vload, vsplat, vstore, vsub
from .bias import bias_grad

# Tiles per task: the task's V and M, 16 x (C or K) x tiles floats each, stay in the L2 cache.
TASK_FLOATS = 1 << 16


def accepts(g):
    """None for a stride-1, dilation-1, 3x3 layer without groups and with padding at most 2 (so
    that the input gradient, padded by 2 - p, is one too), else why not."""
    if (g.kh, g.kw) != (3, 3):
        return f"a {g.kh}x{g.kw} kernel: it needs 3x3"
    if g.stride != (1, 1) or g.dilation != (1, 1):
        return f"stride {g.stride}, dilation {g.dilation}: it needs 1"
    if g.groups != 1:
        return f"groups {g.groups}: it needs groups 1"
    if not (0 <= min(g.padding) and max(g.padding) <= 2):
        return f"padding {g.padding}: it needs 0, 1 or 2"
    return None if g.positions >= 1 else "no output positions"


@njit(inline="always")
def _tap(w, k, c, i, j, transpose_flip):
    """Tap (i, j) of weight w'[k, c]: w[k, c, i, j], or w[c, k, 2 - i, 2 - j] (transposed, flipped)."""
    return w[c, k, 2 - i, 2 - j] if transpose_flip else w[k, c, i, j]


@njit(inline="always")
def _rows_of_g(g0, g1, g2):
    """G (g0, g1, g2)' in float64: G's rows (1, 0, 0), (1, 1, 1) / 2, (1, -1, 1) / 2, (0, 0, 1)."""
    g0, g1, g2 = np.float64(g0), np.float64(g1), np.float64(g2)
    return g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2


@njit(inline="always")
def transformed_weight(w, k, c, transpose_flip):
    """G w'[k, c] G' (4x4, row-major, as 16 float64): w' = w (K, C, 3, 3), or with
    ``transpose_flip`` w'[a, b] = w[b, a] flipped."""
    # Column j of G g is G times kernel column j: (a_i), (b_i), (c_i); row i of the result is G
    # times row i of G g.
    a0, a1, a2, a3 = _rows_of_g(
        _tap(w, k, c, 0, 0, transpose_flip), _tap(w, k, c, 1, 0, transpose_flip), _tap(w, k, c, 2, 0, transpose_flip)
    )
    b0, b1, b2, b3 = _rows_of_g(
        _tap(w, k, c, 0, 1, transpose_flip), _tap(w, k, c, 1, 1, transpose_flip), _tap(w, k, c, 2, 1, transpose_flip)
    )
    c0, c1, c2, c3 = _rows_of_g(
        _tap(w, k, c, 0, 2, transpose_flip), _tap(w, k, c, 1, 2, transpose_flip), _tap(w, k, c, 2, 2, transpose_flip)
    )
    return _rows_of_g(a0, b0, c0) + _rows_of_g(a1, b1, c1) + _rows_of_g(a2, b2, c2) + _rows_of_g(a3, b3, c3)


@njit(parallel=True, cache=True)
def _transform_weights(u, w, transpose_flip):
    """u (16, KP, C', 6) = G w' G' for output channel k = 6 kp + r of w' (zero past K'), in float64
    stored in u's dtype (``transformed_weight``)."""
    panels, inputs = u.shape[1], u.shape[2]
    outputs = w.shape[1] if transpose_flip else w.shape[0]
    for task in prange(panels * inputs):
        kp, c = task // inputs, task % inputs
        for r in range(ROWS):
            k = kp * ROWS + r
            if k >= outputs:
                u[:, kp, c, r] = 0
                continue
            values = transformed_weight(w, k, c, transpose_flip)
            for t in range(16):
                u[t, kp, c, r] = values[t]


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _patches(patches, x, n, c, ty, at, pad_h, pad_w, span):
    """patches[parity, i, at + j] = the even (parity 0) or odd columns 2 j + parity, j < span, of
    row 2 ty + i of x[n, c] padded by (pad_h, pad_w): the 4 rows a tile row reads, zero outside."""
    height, width = x.shape[2], x.shape[3]
    for i in range(4):
        iy = 2 * ty + i - pad_h
        even, odd = patches[0, i, at : at + span], patches[1, i, at : at + span]
        if iy < 0 or iy >= height:
            even[:] = 0
            odd[:] = 0
            continue
        src = x[n, c, iy]
        for j in range(span):
            ix = 2 * j - pad_w
            even[j] = src[ix] if 0 <= ix < width else 0
            odd[j] = src[ix + 1] if 0 <= ix + 1 < width else 0


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _input_transform(v, at0, plane, patches, slots):
    """v.flat[at0 + t plane + q] = (B' d B)[t] for every tile slot q < slots, whose 4x4 input d is
    d[i, 0] = even[i, q], d[i, 1] = odd[i, q], d[i, 2] = even[i, q + 1], d[i, 3] = odd[i, q + 1]
    (patches (2, 4, >= slots + 1 + LANES)). B's columns: (1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1,
    0), (0, 1, 0, -1). Whole vectors: up to LANES - 1 slots past the last are written too."""
    span = patches.shape[2]
    even, odd = patches[0], patches[1]
    for q in range(0, slots, LANES):
        d00, d01, d02, d03 = vload(even, q), vload(odd, q), vload(even, q + 1), vload(odd, q + 1)
        r = span + q
        d10, d11, d12, d13 = vload(even, r), vload(odd, r), vload(even, r + 1), vload(odd, r + 1)
        r = 2 * span + q
        d20, d21, d22, d23 = vload(even, r), vload(odd, r), vload(even, r + 1), vload(odd, r + 1)
        r = 3 * span + q
        d30, d31, d32, d33 = vload(even, r), vload(odd, r), vload(even, r + 1), vload(odd, r + 1)
        for i in range(4):  # row i of B' d, then times B
            if i == 0:
                e0, e1, e2, e3 = vsub(d00, d20), vsub(d01, d21), vsub(d02, d22), vsub(d03, d23)
            elif i == 1:
                e0, e1, e2, e3 = vadd(d10, d20), vadd(d11, d21), vadd(d12, d22), vadd(d13, d23)
            elif i == 2:
                e0, e1, e2, e3 = vsub(d20, d10), vsub(d21, d11), vsub(d22, d12), vsub(d23, d13)
            else:
                e0, e1, e2, e3 = vsub(d10, d30), vsub(d11, d31), vsub(d12, d32), vsub(d13, d33)
            at = at0 + 4 * i * plane + q
            vstore(v, at, vsub(e0, e2))
            vstore(v, at + plane, vadd(e1, e2))
            vstore(v, at + 2 * plane, vsub(e2, e1))
            vstore(v, at + 3 * plane, vsub(e1, e3))


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _output_transform(y, m, at0, plane, slots, bias):
    """y[:, q] = the 2x2 outputs A' m A + bias of every tile slot q < slots (y (4, slots + LANES)),
    m.flat[at0 + t plane + q] the tile's 16 products. A's columns: (1, 1, 1, 0), (0, 1, -1, -1)."""
    for q in range(0, slots, LANES):
        at = at0 + q
        m00, m01, m02, m03 = vload(m, at), vload(m, at + plane), vload(m, at + 2 * plane), vload(m, at + 3 * plane)
        at += 4 * plane
        m10, m11, m12, m13 = vload(m, at), vload(m, at + plane), vload(m, at + 2 * plane), vload(m, at + 3 * plane)
        at += 4 * plane
        m20, m21, m22, m23 = vload(m, at), vload(m, at + plane), vload(m, at + 2 * plane), vload(m, at + 3 * plane)
        at += 4 * plane
        m30, m31, m32, m33 = vload(m, at), vload(m, at + plane), vload(m, at + 2 * plane), vload(m, at + 3 * plane)
        a0, a1, a2, a3 = (
            vadd(vadd(m00, m10), m20),
            vadd(vadd(m01, m11), m21),
            vadd(vadd(m02, m12), m22),
            vadd(vadd(m03, m13), m23),
        )
        c0, c1, c2, c3 = (
            vsub(vsub(m10, m20), m30),
            vsub(vsub(m11, m21), m31),
            vsub(vsub(m12, m22), m32),
            vsub(vsub(m13, m23), m33),
        )
        vstore(y[0], q, vadd(vadd(vadd(a0, a1), a2), bias))
        vstore(y[1], q, vadd(vsub(vsub(a1, a2), a3), bias))
        vstore(y[2], q, vadd(vadd(vadd(c0, c1), c2), bias))
        vstore(y[3], q, vadd(vsub(vsub(c1, c2), c3), bias))


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _tasks(out, x, u, b, has_bias, pad_h, pad_w, rows_per_task, vbuf, mbuf, pbuf, ybuf):
    """out (N, K, OH, OW) (+ b) = the convolution of x (N, C, H, W), padded by (pad_h, pad_w), with
    the weights transformed into u (16, KP, C, 6). Tile row R = n th + ty; a task takes
    ``rows_per_task`` of them, laid end to end with one spare slot each (slot (R - R0) (tw + 1) +
    tx), so that the transforms run on whole vectors whatever the plane's width. Worker scratch:
    vbuf (W, 16, C, S), mbuf (W, 16, KP 6, S), pbuf (W, 2, 4, S + 1), ybuf (W, 4, S)."""
    n_batch, channels = x.shape[0], x.shape[1]
    k_out, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    span, panels, chunk = tw + 1, u.shape[1], vbuf.shape[3]
    rows, workers = n_batch * th, vbuf.shape[0]
    tasks = -(-rows // rows_per_task)
    zero = x.dtype.type(0)
    for worker in prange(workers):
        v, m, patches, y = vbuf[worker].reshape(-1), mbuf[worker].reshape(-1), pbuf[worker], ybuf[worker]
        for task in range(worker * tasks // workers, (worker + 1) * tasks // workers):
            r0, r1 = task * rows_per_task, min(task * rows_per_task + rows_per_task, rows)
            slots = (r1 - r0) * span
            for c in range(channels):
                for row in range(r0, r1):
                    _patches(patches, x, row // th, c, row % th, (row - r0) * span, pad_h, pad_w, span)
                _input_transform(v, c * chunk, channels * chunk, patches, slots)
            for t in range(16):  # M[t] = U[t] (6-channel panels) @ V[t] (2 vectors of slots)
                for kp in range(panels):
                    for q0 in range(0, slots, COLUMNS):
                        gemm_6x2v_rows_to(
                            m, (t * panels * ROWS + kp * ROWS) * chunk + q0, chunk, u[t, kp], v,
                            t * channels * chunk + q0, chunk, channels, zero,
                        )  # fmt: skip
            for k in range(k_out):
                _output_transform(y, m, k * chunk, panels * ROWS * chunk, slots, vsplat(b[k] if has_bias else zero))
                for row in range(r0, r1):
                    n, ty = row // th, row % th
                    top, below = out[n, k, 2 * ty], out[n, k, min(2 * ty + 1, oh - 1)]
                    q = (row - r0) * span
                    for tx in range(tw):
                        ox = 2 * tx
                        top[ox] = y[0, q + tx]
                        if ox + 1 < ow:
                            top[ox + 1] = y[1, q + tx]
                        if 2 * ty + 1 < oh:
                            below[ox] = y[2, q + tx]
                            if ox + 1 < ow:
                                below[ox + 1] = y[3, q + tx]


def _convolve(out, x, w, b, padding, transpose_flip):
    """out = the stride-1 3x3 convolution of x with w (or w transposed and flipped), padding p."""
    n_batch, channels = x.shape[0], x.shape[1]
    k_out, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    panels = -(-k_out // ROWS)
    u = scratch("winograd.u", (16, panels, channels, ROWS), x.dtype)
    _transform_weights(u, w, transpose_flip)
    rows_per_task = max(1, TASK_FLOATS // (16 * max(channels, panels * ROWS) * (tw + 1)))
    rows = n_batch * th
    rows_per_task = min(rows_per_task, rows)
    slots = rows_per_task * (tw + 1)
    chunk = -(-slots // COLUMNS) * COLUMNS + LANES  # the slots, their last vector's overrun, a spare vector
    workers, vbuf = worker_scratch("winograd.v", -(-rows // rows_per_task), (16, channels, chunk), x.dtype)
    mbuf = scratch("winograd.m", (workers, 16, panels * ROWS, chunk), x.dtype)
    pbuf = scratch("winograd.patches", (workers, 2, 4, chunk + 1), x.dtype)
    ybuf = scratch("winograd.y", (workers, 4, chunk), x.dtype)
    has_bias = b is not None
    bias = b if has_bias else out.reshape(-1)[:1]
    _tasks(out, x, u, bias, has_bias, padding[0], padding[1], rows_per_task, vbuf, mbuf, pbuf, ybuf)


def forward(out, x, w, b, g):
    """out (N, K, OH, OW) = conv3x3(x, w) + b, stride 1, padding g.padding."""
    _convolve(out, x, w, b, g.padding, False)


def backward(dx, dw, db, dy, x, w, g):
    """The input gradient (the forward on dy padded by 2 - p, weights transposed and flipped) and
    the bias gradient; the weight gradient is another entry's (the table asks per pass)."""
    if dw is not None:
        raise ValueError("winograd computes no weight gradient: the table sends that pass elsewhere")
    if db is not None:
        bias_grad(db, dy)
    if dx is not None:
        _convolve(dx, dy, w, None, (2 - g.padding[0], 2 - g.padding[1]), True)


__all__ = ["accepts", "backward", "forward"]
