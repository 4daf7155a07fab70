"""The direct convolutions' register tiles on explicit vectors (simd.py), beside the GEMM tiles of
microkernel.py: each names its accumulators one by one, so LLVM keeps them in vector registers
while a reduction streams through them.

* ``dot_4x3``: 4 rows of dy against 3 input rows along their contiguous axis (weight gradients);
* ``positions_4x3v``, ``positions_2x6v``: a block of output channels over consecutive positions of
  a flat grid (conv/direct_positions.py);
* ``gather_6x2v``: 6 output positions x 2 vectors of output channels, and ``gather_12x1v``: 12
  positions x 1 vector, for layers with at most LANES output channels per group
  (conv/direct_channels.py);
* ``outer_3x4v``: 3 taps x 4 vectors of output channels of a weight gradient, and ``outer_3x2v``:
  3 taps x 2 vectors, for at most 2 LANES output channels per group (the same).
"""

from numba import njit

from .simd import LANES, vbroadcast, vfma, vload, vsplat, vstore


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def dot_4x3(acc, d0, d1, d2, d3, x0, x1, x2, x_at0, x_at1, x_at2, length):
    """acc (12 LANES,) += over every vector q of range(0, length, LANES), the products of
    d_r[q : q + LANES] and x_j[x_at_j + q :][:LANES] (accumulator 3 r + j), the 12 sums held in
    registers through the loop: 4 + 3 loads per 12 FMAs. The weight gradients' micro-kernel: a
    reduction along the contiguous axis of 4 rows of dy against 3 input rows (or 3 taps of one)."""
    a00, a01, a02 = vload(acc, 0), vload(acc, LANES), vload(acc, 2 * LANES)
    a10, a11, a12 = vload(acc, 3 * LANES), vload(acc, 4 * LANES), vload(acc, 5 * LANES)
    a20, a21, a22 = vload(acc, 6 * LANES), vload(acc, 7 * LANES), vload(acc, 8 * LANES)
    a30, a31, a32 = vload(acc, 9 * LANES), vload(acc, 10 * LANES), vload(acc, 11 * LANES)
    for q in range(0, length, LANES):
        v0, v1, v2 = vload(x0, x_at0 + q), vload(x1, x_at1 + q), vload(x2, x_at2 + q)
        d = vload(d0, q)
        a00, a01, a02 = vfma(d, v0, a00), vfma(d, v1, a01), vfma(d, v2, a02)
        d = vload(d1, q)
        a10, a11, a12 = vfma(d, v0, a10), vfma(d, v1, a11), vfma(d, v2, a12)
        d = vload(d2, q)
        a20, a21, a22 = vfma(d, v0, a20), vfma(d, v1, a21), vfma(d, v2, a22)
        d = vload(d3, q)
        a30, a31, a32 = vfma(d, v0, a30), vfma(d, v1, a31), vfma(d, v2, a32)
    vstore(acc, 0, a00), vstore(acc, LANES, a01), vstore(acc, 2 * LANES, a02)
    vstore(acc, 3 * LANES, a10), vstore(acc, 4 * LANES, a11), vstore(acc, 5 * LANES, a12)
    vstore(acc, 6 * LANES, a20), vstore(acc, 7 * LANES, a21), vstore(acc, 8 * LANES, a22)
    vstore(acc, 9 * LANES, a30), vstore(acc, 10 * LANES, a31), vstore(acc, 11 * LANES, a32)


@njit(fastmath=True, boundscheck=False, cache=True)
def positions_4x3v(y, planes, weights, offsets, zero):
    """y (4, Lq) = the wide-grid convolution of one sample's flat planes (C * L,) with one block of
    4 output channels' weights (T * 4,), T = C * KH * KW taps, where tap t reads the planes from
    ``offsets[t]`` = c * L + i * wp + j on. One loop over the taps rather than three nested ones:
    the loop body is then only the 7 loads and 12 FMAs. Lq is a multiple of 3 LANES, and L covers
    every tap of the last tile."""
    lq = y.shape[1]
    y0, y1, y2, y3 = y[0], y[1], y[2], y[3]
    for q0 in range(0, lq, 3 * LANES):
        a00 = a01 = a02 = a10 = a11 = a12 = vsplat(zero)
        a20 = a21 = a22 = a30 = a31 = a32 = vsplat(zero)
        for t in range(offsets.shape[0]):
            at = q0 + offsets[t]
            x0, x1, x2 = vload(planes, at), vload(planes, at + LANES), vload(planes, at + 2 * LANES)
            s = vbroadcast(weights, 4 * t)
            a00, a01, a02 = vfma(s, x0, a00), vfma(s, x1, a01), vfma(s, x2, a02)
            s = vbroadcast(weights, 4 * t + 1)
            a10, a11, a12 = vfma(s, x0, a10), vfma(s, x1, a11), vfma(s, x2, a12)
            s = vbroadcast(weights, 4 * t + 2)
            a20, a21, a22 = vfma(s, x0, a20), vfma(s, x1, a21), vfma(s, x2, a22)
            s = vbroadcast(weights, 4 * t + 3)
            a30, a31, a32 = vfma(s, x0, a30), vfma(s, x1, a31), vfma(s, x2, a32)
        vstore(y0, q0, a00), vstore(y0, q0 + LANES, a01), vstore(y0, q0 + 2 * LANES, a02)
        vstore(y1, q0, a10), vstore(y1, q0 + LANES, a11), vstore(y1, q0 + 2 * LANES, a12)
        vstore(y2, q0, a20), vstore(y2, q0 + LANES, a21), vstore(y2, q0 + 2 * LANES, a22)
        vstore(y3, q0, a30), vstore(y3, q0 + LANES, a31), vstore(y3, q0 + 2 * LANES, a32)


@njit(fastmath=True, boundscheck=False, cache=True)
def positions_2x6v(y, planes, weights, offsets, zero):
    """``positions_4x3v`` for blocks of 2 output channels (y (2, Lq), weights (T * 2,)): 6 vectors
    of positions x 2 channels, also 12 accumulators. Layers whose channel count is not a multiple
    of 4 (LeNet's 6) so waste no channels; Lq is a multiple of 6 LANES."""
    lq = y.shape[1]
    y0, y1 = y[0], y[1]
    for q0 in range(0, lq, 6 * LANES):
        a00 = a01 = a02 = a03 = a04 = a05 = vsplat(zero)
        a10 = a11 = a12 = a13 = a14 = a15 = vsplat(zero)
        for t in range(offsets.shape[0]):
            at = q0 + offsets[t]
            s0, s1 = vbroadcast(weights, 2 * t), vbroadcast(weights, 2 * t + 1)
            x = vload(planes, at)
            a00, a10 = vfma(s0, x, a00), vfma(s1, x, a10)
            x = vload(planes, at + LANES)
            a01, a11 = vfma(s0, x, a01), vfma(s1, x, a11)
            x = vload(planes, at + 2 * LANES)
            a02, a12 = vfma(s0, x, a02), vfma(s1, x, a12)
            x = vload(planes, at + 3 * LANES)
            a03, a13 = vfma(s0, x, a03), vfma(s1, x, a13)
            x = vload(planes, at + 4 * LANES)
            a04, a14 = vfma(s0, x, a04), vfma(s1, x, a14)
            x = vload(planes, at + 5 * LANES)
            a05, a15 = vfma(s0, x, a05), vfma(s1, x, a15)
        vstore(y0, q0, a00), vstore(y0, q0 + LANES, a01), vstore(y0, q0 + 2 * LANES, a02)
        vstore(y0, q0 + 3 * LANES, a03), vstore(y0, q0 + 4 * LANES, a04), vstore(y0, q0 + 5 * LANES, a05)
        vstore(y1, q0, a10), vstore(y1, q0 + LANES, a11), vstore(y1, q0 + 2 * LANES, a12)
        vstore(y1, q0 + 3 * LANES, a13), vstore(y1, q0 + 4 * LANES, a14), vstore(y1, q0 + 5 * LANES, a15)


@njit(inline="always")
def _start(starts, p, base):
    """Where position p's pixels start (the last position's past the end)."""
    return base + starts[min(p, starts.shape[0] - 1)]


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def gather_6x2v(tile, planes, weights, offsets, starts, p0, base, zero):
    """tile (6, 2 LANES) = for output positions r = 0..5 the sums over taps t of the pixel
    planes[base + starts[min(p0 + r, P - 1)] + offsets[t]] (broadcast) times
    weights[t * 2 LANES :][:2 LANES]: 12 accumulators; per tap 2 weight loads, 6 broadcasts, 12
    FMAs (rows past the P positions repeat the last one)."""
    s0, s1, s2 = _start(starts, p0, base), _start(starts, p0 + 1, base), _start(starts, p0 + 2, base)
    s3, s4, s5 = _start(starts, p0 + 3, base), _start(starts, p0 + 4, base), _start(starts, p0 + 5, base)
    a00 = a01 = a10 = a11 = a20 = a21 = vsplat(zero)
    a30 = a31 = a40 = a41 = a50 = a51 = vsplat(zero)
    for t in range(offsets.shape[0]):
        o = offsets[t]
        w0, w1 = vload(weights, t * 2 * LANES), vload(weights, t * 2 * LANES + LANES)
        v = vbroadcast(planes, s0 + o)
        a00, a01 = vfma(v, w0, a00), vfma(v, w1, a01)
        v = vbroadcast(planes, s1 + o)
        a10, a11 = vfma(v, w0, a10), vfma(v, w1, a11)
        v = vbroadcast(planes, s2 + o)
        a20, a21 = vfma(v, w0, a20), vfma(v, w1, a21)
        v = vbroadcast(planes, s3 + o)
        a30, a31 = vfma(v, w0, a30), vfma(v, w1, a31)
        v = vbroadcast(planes, s4 + o)
        a40, a41 = vfma(v, w0, a40), vfma(v, w1, a41)
        v = vbroadcast(planes, s5 + o)
        a50, a51 = vfma(v, w0, a50), vfma(v, w1, a51)
    vstore(tile[0], 0, a00), vstore(tile[0], LANES, a01)
    vstore(tile[1], 0, a10), vstore(tile[1], LANES, a11)
    vstore(tile[2], 0, a20), vstore(tile[2], LANES, a21)
    vstore(tile[3], 0, a30), vstore(tile[3], LANES, a31)
    vstore(tile[4], 0, a40), vstore(tile[4], LANES, a41)
    vstore(tile[5], 0, a50), vstore(tile[5], LANES, a51)


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def gather_12x1v(tile, planes, weights, offsets, starts, p0, base, zero):
    """tile (12, LANES) = for output positions r = 0..11 the sums over taps t of the pixel
    planes[base + starts[min(p0 + r, P - 1)] + offsets[t]] (broadcast) times
    weights[t LANES :][:LANES]: 12 accumulators; per tap 1 weight load, 12 broadcasts, 12 FMAs
    (rows past the P positions repeat the last one)."""
    s0, s1, s2 = _start(starts, p0, base), _start(starts, p0 + 1, base), _start(starts, p0 + 2, base)
    s3, s4, s5 = _start(starts, p0 + 3, base), _start(starts, p0 + 4, base), _start(starts, p0 + 5, base)
    s6, s7, s8 = _start(starts, p0 + 6, base), _start(starts, p0 + 7, base), _start(starts, p0 + 8, base)
    s9, s10, s11 = _start(starts, p0 + 9, base), _start(starts, p0 + 10, base), _start(starts, p0 + 11, base)
    a0 = a1 = a2 = a3 = a4 = a5 = vsplat(zero)
    a6 = a7 = a8 = a9 = a10 = a11 = vsplat(zero)
    for t in range(offsets.shape[0]):
        o = offsets[t]
        w = vload(weights, t * LANES)
        a0, a1 = vfma(vbroadcast(planes, s0 + o), w, a0), vfma(vbroadcast(planes, s1 + o), w, a1)
        a2, a3 = vfma(vbroadcast(planes, s2 + o), w, a2), vfma(vbroadcast(planes, s3 + o), w, a3)
        a4, a5 = vfma(vbroadcast(planes, s4 + o), w, a4), vfma(vbroadcast(planes, s5 + o), w, a5)
        a6, a7 = vfma(vbroadcast(planes, s6 + o), w, a6), vfma(vbroadcast(planes, s7 + o), w, a7)
        a8, a9 = vfma(vbroadcast(planes, s8 + o), w, a8), vfma(vbroadcast(planes, s9 + o), w, a9)
        a10, a11 = vfma(vbroadcast(planes, s10 + o), w, a10), vfma(vbroadcast(planes, s11 + o), w, a11)
    vstore(tile[0], 0, a0), vstore(tile[1], 0, a1), vstore(tile[2], 0, a2), vstore(tile[3], 0, a3)
    vstore(tile[4], 0, a4), vstore(tile[5], 0, a5), vstore(tile[6], 0, a6), vstore(tile[7], 0, a7)
    vstore(tile[8], 0, a8), vstore(tile[9], 0, a9), vstore(tile[10], 0, a10), vstore(tile[11], 0, a11)


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def outer_3x4v(acc, plane, dy, starts, shift, step, row_stride, k0):
    """acc (12 LANES,) += over positions p: the pixels plane[starts[p] + shift + j step] (3 taps j,
    broadcast) times dy[p row_stride + k0 :][:4 LANES] (4 vectors of output channels); accumulator
    4 j + v. Three broadcasts, then one dy vector at a time: 12 accumulators, 3 broadcasts and 1
    dy vector fill the 16 ymm registers exactly."""
    a00, a01, a02, a03 = vload(acc, 0), vload(acc, LANES), vload(acc, 2 * LANES), vload(acc, 3 * LANES)
    a10, a11 = vload(acc, 4 * LANES), vload(acc, 5 * LANES)
    a12, a13 = vload(acc, 6 * LANES), vload(acc, 7 * LANES)
    a20, a21 = vload(acc, 8 * LANES), vload(acc, 9 * LANES)
    a22, a23 = vload(acc, 10 * LANES), vload(acc, 11 * LANES)
    for p in range(starts.shape[0]):
        at, row = starts[p] + shift, p * row_stride + k0
        v0 = vbroadcast(plane, at)
        v1 = vbroadcast(plane, at + step)
        v2 = vbroadcast(plane, at + 2 * step)
        d = vload(dy, row)
        a00, a10, a20 = vfma(v0, d, a00), vfma(v1, d, a10), vfma(v2, d, a20)
        d = vload(dy, row + LANES)
        a01, a11, a21 = vfma(v0, d, a01), vfma(v1, d, a11), vfma(v2, d, a21)
        d = vload(dy, row + 2 * LANES)
        a02, a12, a22 = vfma(v0, d, a02), vfma(v1, d, a12), vfma(v2, d, a22)
        d = vload(dy, row + 3 * LANES)
        a03, a13, a23 = vfma(v0, d, a03), vfma(v1, d, a13), vfma(v2, d, a23)
    vstore(acc, 0, a00), vstore(acc, LANES, a01), vstore(acc, 2 * LANES, a02), vstore(acc, 3 * LANES, a03)
    vstore(acc, 4 * LANES, a10), vstore(acc, 5 * LANES, a11), vstore(acc, 6 * LANES, a12), vstore(acc, 7 * LANES, a13)
    vstore(acc, 8 * LANES, a20), vstore(acc, 9 * LANES, a21), vstore(acc, 10 * LANES, a22)
    vstore(acc, 11 * LANES, a23)


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def outer_3x2v(acc, plane, dy, starts, shift, step, row_stride, k0):
    """outer_3x4v for 2 vectors of output channels: acc (6 LANES,) += over positions p the pixels
    plane[starts[p] + shift + j step] (3 taps j, broadcast) times dy[p row_stride + k0 :][:2 LANES];
    accumulator 2 j + v."""
    a00, a01, a10 = vload(acc, 0), vload(acc, LANES), vload(acc, 2 * LANES)
    a11, a20, a21 = vload(acc, 3 * LANES), vload(acc, 4 * LANES), vload(acc, 5 * LANES)
    for p in range(starts.shape[0]):
        at, row = starts[p] + shift, p * row_stride + k0
        v0, v1, v2 = vbroadcast(plane, at), vbroadcast(plane, at + step), vbroadcast(plane, at + 2 * step)
        d0, d1 = vload(dy, row), vload(dy, row + LANES)
        a00, a10, a20 = vfma(v0, d0, a00), vfma(v1, d0, a10), vfma(v2, d0, a20)
        a01, a11, a21 = vfma(v0, d1, a01), vfma(v1, d1, a11), vfma(v2, d1, a21)
    vstore(acc, 0, a00), vstore(acc, LANES, a01), vstore(acc, 2 * LANES, a10)
    vstore(acc, 3 * LANES, a11), vstore(acc, 4 * LANES, a20), vstore(acc, 5 * LANES, a21)
