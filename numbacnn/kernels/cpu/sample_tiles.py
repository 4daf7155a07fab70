"""The register tiles of the convolution vectorised over samples (conv/direct_samples.py), on
explicit vectors (simd.py): every vector holds one pixel of LANES samples, so no lane is wasted
on a plane's edge whatever its size.

A block of samples lies as (C, R, Wg, LANES): pixel (c, y, x) of the block is the vector at
((c * R + y) * Wg + x) * LANES. Output position p of a layer reads its taps from ``bases[p]`` +
``offsets[t]``; positions are listed one by one (a tile may span two rows), so a plane of any
width fills whole tiles. A tile runs the taps t0 <= t < t1 only: with the taps ordered by kernel
row, the rows that read only the zero border (at a plane's top and bottom) are skipped.

* ``samples_4x3``: 4 output channels x 3 positions, 12 accumulators; per tap 3 loads, 4
  broadcasts, 12 FMAs;
* ``samples_2x6``: 2 output channels x 6 positions, for channel counts that are not a multiple
  of 4 (LeNet's 6);
* ``samples_dot_4x3``: a weight gradient's 4 output channels x 3 taps of a row, reduced over
  some rows of output positions of one block of samples.
"""

from numba import njit

from .simd import LANES, vbroadcast, vfma, vload, vsplat, vstore


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def samples_4x3(y, at, planes, weights, offsets, bases, p0, t0, t1, zero):
    """y[r] (r < 4, flat rows) at ``at``, ``at`` + LANES, ``at`` + 2 LANES <- the sums over taps
    t0 <= t < t1 of weights[4 t + r] (broadcast) times planes[b_p + offsets[t]:][:LANES], for the 3
    positions whose taps start at b_p = bases[p0 + p] (the taps outside t0..t1 read only zeros)."""
    b0, b1, b2 = bases[p0], bases[p0 + 1], bases[p0 + 2]
    a00 = a01 = a02 = a10 = a11 = a12 = vsplat(zero)
    a20 = a21 = a22 = a30 = a31 = a32 = vsplat(zero)
    for t in range(t0, t1):
        o = offsets[t]
        x0, x1, x2 = vload(planes, b0 + o), vload(planes, b1 + o), vload(planes, b2 + o)
        s = vbroadcast(weights, 4 * t)
        a00, a01, a02 = vfma(s, x0, a00), vfma(s, x1, a01), vfma(s, x2, a02)
        s = vbroadcast(weights, 4 * t + 1)
        a10, a11, a12 = vfma(s, x0, a10), vfma(s, x1, a11), vfma(s, x2, a12)
        s = vbroadcast(weights, 4 * t + 2)
        a20, a21, a22 = vfma(s, x0, a20), vfma(s, x1, a21), vfma(s, x2, a22)
        s = vbroadcast(weights, 4 * t + 3)
        a30, a31, a32 = vfma(s, x0, a30), vfma(s, x1, a31), vfma(s, x2, a32)
    y0, y1, y2, y3 = y[0], y[1], y[2], y[3]
    vstore(y0, at, a00), vstore(y0, at + LANES, a01), vstore(y0, at + 2 * LANES, a02)
    vstore(y1, at, a10), vstore(y1, at + LANES, a11), vstore(y1, at + 2 * LANES, a12)
    vstore(y2, at, a20), vstore(y2, at + LANES, a21), vstore(y2, at + 2 * LANES, a22)
    vstore(y3, at, a30), vstore(y3, at + LANES, a31), vstore(y3, at + 2 * LANES, a32)


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def samples_2x6(y, at, planes, weights, offsets, bases, p0, t0, t1, zero):
    """``samples_4x3`` for 2 output channels (weights[2 t + r]) and the 6 positions starting at
    bases[p0 ...]: per tap 6 loads, 2 broadcasts, 12 FMAs."""
    b0, b1, b2 = bases[p0], bases[p0 + 1], bases[p0 + 2]
    b3, b4, b5 = bases[p0 + 3], bases[p0 + 4], bases[p0 + 5]
    a00 = a01 = a02 = a03 = a04 = a05 = vsplat(zero)
    a10 = a11 = a12 = a13 = a14 = a15 = vsplat(zero)
    for t in range(t0, t1):
        o = offsets[t]
        s0, s1 = vbroadcast(weights, 2 * t), vbroadcast(weights, 2 * t + 1)
        x = vload(planes, b0 + o)
        a00, a10 = vfma(s0, x, a00), vfma(s1, x, a10)
        x = vload(planes, b1 + o)
        a01, a11 = vfma(s0, x, a01), vfma(s1, x, a11)
        x = vload(planes, b2 + o)
        a02, a12 = vfma(s0, x, a02), vfma(s1, x, a12)
        x = vload(planes, b3 + o)
        a03, a13 = vfma(s0, x, a03), vfma(s1, x, a13)
        x = vload(planes, b4 + o)
        a04, a14 = vfma(s0, x, a04), vfma(s1, x, a14)
        x = vload(planes, b5 + o)
        a05, a15 = vfma(s0, x, a05), vfma(s1, x, a15)
    y0, y1 = y[0], y[1]
    vstore(y0, at, a00), vstore(y0, at + LANES, a01), vstore(y0, at + 2 * LANES, a02)
    vstore(y0, at + 3 * LANES, a03), vstore(y0, at + 4 * LANES, a04), vstore(y0, at + 5 * LANES, a05)
    vstore(y1, at, a10), vstore(y1, at + LANES, a11), vstore(y1, at + 2 * LANES, a12)
    vstore(y1, at + 3 * LANES, a13), vstore(y1, at + 4 * LANES, a14), vstore(y1, at + 5 * LANES, a15)


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def samples_dot_4x3(acc, d0, d1, d2, d3, d_at, d_wg, plane, x_at, x_wg, oy0, oy1, ow):
    """acc (12 LANES,) [(3 r + j) LANES :][:LANES] += for j < 3 the sum over the output positions
    (oy0 <= oy < oy1, ox < ow) of d_r[d_at + (oy d_wg + ox) LANES :][:LANES] times plane[x_at +
    (oy x_wg + ox + j) LANES :][:LANES]: the 12 sums in registers through the rows, per position
    4 + 3 loads and 12 FMAs. ``d_wg`` and ``x_wg`` are the widths of the two grids' rows. A weight
    gradient runs it over a few rows at a time, so that those rows of dy and x stay in L1 while
    every tap reads them."""
    a00, a01, a02 = vload(acc, 0), vload(acc, LANES), vload(acc, 2 * LANES)
    a10, a11, a12 = vload(acc, 3 * LANES), vload(acc, 4 * LANES), vload(acc, 5 * LANES)
    a20, a21, a22 = vload(acc, 6 * LANES), vload(acc, 7 * LANES), vload(acc, 8 * LANES)
    a30, a31, a32 = vload(acc, 9 * LANES), vload(acc, 10 * LANES), vload(acc, 11 * LANES)
    for oy in range(oy0, oy1):
        d_row, x_row = d_at + oy * d_wg * LANES, x_at + oy * x_wg * LANES
        for ox in range(ow):
            q, p = d_row + ox * LANES, x_row + ox * LANES
            x0, x1, x2 = vload(plane, p), vload(plane, p + LANES), vload(plane, p + 2 * LANES)
            d = vload(d0, q)
            a00, a01, a02 = vfma(d, x0, a00), vfma(d, x1, a01), vfma(d, x2, a02)
            d = vload(d1, q)
            a10, a11, a12 = vfma(d, x0, a10), vfma(d, x1, a11), vfma(d, x2, a12)
            d = vload(d2, q)
            a20, a21, a22 = vfma(d, x0, a20), vfma(d, x1, a21), vfma(d, x2, a22)
            d = vload(d3, q)
            a30, a31, a32 = vfma(d, x0, a30), vfma(d, x1, a31), vfma(d, x2, a32)
    vstore(acc, 0, a00), vstore(acc, LANES, a01), vstore(acc, 2 * LANES, a02)
    vstore(acc, 3 * LANES, a10), vstore(acc, 4 * LANES, a11), vstore(acc, 5 * LANES, a12)
    vstore(acc, 6 * LANES, a20), vstore(acc, 7 * LANES, a21), vstore(acc, 8 * LANES, a22)
    vstore(acc, 9 * LANES, a30), vstore(acc, 10 * LANES, a31), vstore(acc, 11 * LANES, a32)


__all__ = ["samples_2x6", "samples_4x3", "samples_dot_4x3"]
