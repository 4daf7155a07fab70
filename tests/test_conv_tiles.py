"""The direct convolutions' register tiles (kernels/cpu/conv_tiles.py), each called on its own
against a float64 NumPy computation: dot_4x3, the position tiles, the gather tiles (2 vectors and 1)
and the weight-gradient tiles (4 vectors and 2)."""

import numpy as np
import pytest
from numba import njit

from numbacnn.kernels.cpu import conv_tiles
from numbacnn.kernels.cpu.simd import LANES

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@njit(fastmath=True, boundscheck=False)
def _dot(acc, d0, d1, d2, d3, x, at0, at1, at2, length):
    conv_tiles.dot_4x3(acc, d0, d1, d2, d3, x, x, x, at0, at1, at2, length)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dot_4x3_sums_4_rows_against_3_shifted_rows(dtype, rng):
    length = 5 * LANES
    d = rng.standard_normal((4, length)).astype(dtype)
    x = rng.standard_normal(length + 8).astype(dtype)
    acc = rng.standard_normal(12 * LANES).astype(dtype)
    expected = acc.astype(np.float64).reshape(12, LANES).copy()
    for r in range(4):
        for j, at in enumerate((0, 3, 7)):
            products = d[r].astype(np.float64) * x[at : at + length]
            expected[3 * r + j] += products.reshape(-1, LANES).sum(axis=0)
    _dot(acc, d[0], d[1], d[2], d[3], x, 0, 3, 7, length)
    np.testing.assert_allclose(acc.reshape(12, LANES), expected, rtol=TOL[dtype], atol=TOL[dtype])


def _positions_reference(planes, weights, offsets, channels, lq):
    """y (channels, lq): y[r, q] = sum over taps t of weights[t, r] planes[q + offsets[t]]."""
    w = weights.reshape(len(offsets), channels).astype(np.float64)
    y = np.zeros((channels, lq))
    for t, o in enumerate(offsets):
        y += w[t][:, None] * planes[o : o + lq].astype(np.float64)[None]
    return y


@pytest.mark.parametrize("tile, channels, vectors", [("positions_4x3v", 4, 3), ("positions_2x6v", 2, 6)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_position_tiles_convolve_a_flat_plane(tile, channels, vectors, dtype, rng):
    lq = 2 * vectors * LANES  # two tiles
    offsets = np.array([0, 1, 5, 9, 13])
    planes = rng.standard_normal(lq + 13 + LANES).astype(dtype)
    weights = rng.standard_normal(len(offsets) * channels).astype(dtype)
    y = np.full((channels, lq), np.nan, dtype)
    getattr(conv_tiles, tile)(y, planes, weights, offsets, dtype(0))
    expected = _positions_reference(planes, weights, offsets, channels, lq)
    np.testing.assert_allclose(y, expected, rtol=TOL[dtype], atol=TOL[dtype])


@njit(fastmath=True, boundscheck=False)
def _gather(tile, planes, weights, offsets, starts, p0, base, zero):
    conv_tiles.gather_6x2v(tile, planes, weights, offsets, starts, p0, base, zero)


@pytest.mark.parametrize("p0", [0, 2])  # 2: the last rows repeat the last position
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gather_6x2v_broadcasts_pixels_against_channel_vectors(p0, dtype, rng):
    offsets = np.array([0, 2, 11])
    starts = np.array([0, 1, 4, 6, 9, 20])
    base = 3
    planes = rng.standard_normal(45).astype(dtype)
    weights = rng.standard_normal(len(offsets) * 2 * LANES).astype(dtype)
    tile = np.full((6, 2 * LANES), np.nan, dtype)
    _gather(tile, planes, weights, offsets, starts, p0, base, dtype(0))
    w = weights.reshape(len(offsets), 2 * LANES).astype(np.float64)
    rows = [base + starts[min(p0 + r, len(starts) - 1)] for r in range(6)]
    expected = np.array([sum(planes[s + o] * w[t] for t, o in enumerate(offsets)) for s in rows])
    np.testing.assert_allclose(tile, expected, rtol=TOL[dtype], atol=TOL[dtype])


@njit(fastmath=True, boundscheck=False)
def _outer_4(acc, plane, dy, starts, shift, step, row_stride, k0):
    conv_tiles.outer_3x4v(acc, plane, dy, starts, shift, step, row_stride, k0)


@njit(fastmath=True, boundscheck=False)
def _outer_2(acc, plane, dy, starts, shift, step, row_stride, k0):
    conv_tiles.outer_3x2v(acc, plane, dy, starts, shift, step, row_stride, k0)


@pytest.mark.parametrize("tile, vectors", [(_outer_4, 4), (_outer_2, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_outer_tiles_sum_3_taps_against_channel_vectors(tile, vectors, dtype, rng):
    """outer_3x4v and outer_3x2v: 3 broadcast taps against 4 or 2 vectors of output channels."""
    width = vectors * LANES
    positions, row_stride, k0, shift, step = 7, width + LANES, LANES, 2, 3
    starts = np.arange(positions) * 2
    plane = rng.standard_normal(40).astype(dtype)
    dy = rng.standard_normal(positions * row_stride).astype(dtype)
    acc = rng.standard_normal(3 * width).astype(dtype)
    expected = acc.astype(np.float64).reshape(3, width).copy()
    for p, s in enumerate(starts):
        row = dy[p * row_stride + k0 : p * row_stride + k0 + width].astype(np.float64)
        for j in range(3):
            expected[j] += plane[s + shift + j * step] * row
    tile(acc, plane, dy, starts, shift, step, row_stride, k0)
    np.testing.assert_allclose(acc.reshape(3, width), expected, rtol=TOL[dtype], atol=TOL[dtype])


@njit(fastmath=True, boundscheck=False)
def _gather_12(tile, planes, weights, offsets, starts, p0, base, zero):
    conv_tiles.gather_12x1v(tile, planes, weights, offsets, starts, p0, base, zero)


@pytest.mark.parametrize("p0", [0, 3])  # 3: the last rows repeat the last position
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gather_12x1v_broadcasts_pixels_against_one_channel_vector(p0, dtype, rng):
    offsets = np.array([0, 2, 11])
    starts = np.array([0, 1, 4, 6, 9, 20, 21, 23, 24, 26, 30, 31])
    base = 5
    planes = rng.standard_normal(50).astype(dtype)
    weights = rng.standard_normal(len(offsets) * LANES).astype(dtype)
    tile = np.full((12, LANES), np.nan, dtype)
    _gather_12(tile, planes, weights, offsets, starts, p0, base, dtype(0))
    w = weights.reshape(len(offsets), LANES).astype(np.float64)
    rows = [base + starts[min(p0 + r, len(starts) - 1)] for r in range(12)]
    expected = np.array([sum(planes[s + o] * w[t] for t, o in enumerate(offsets)) for s in rows])
    np.testing.assert_allclose(tile, expected, rtol=TOL[dtype], atol=TOL[dtype])
