"""The register tiles (kernels/cpu/microkernel.py), each called on its own against a float64 NumPy
computation: the GEMM tile (and its assembly: packed FMAs on vector registers, no scalar ones),
dot_4x3, the direct convolutions' position, gather and weight-gradient tiles, the fold rule, and
fma_peak."""

import re

import numpy as np
import pytest
from numba import njit

from numbacnn.kernels.cpu import microkernel
from numbacnn.kernels.cpu.simd import LANES

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_micro_kernel_accumulates_a_matrix_product(dtype, rng):
    k = 37
    a = rng.standard_normal((k, microkernel.ROWS)).astype(dtype)
    b = rng.standard_normal((k, microkernel.COLUMNS)).astype(dtype)
    c = rng.standard_normal((microkernel.ROWS, microkernel.COLUMNS)).astype(dtype)
    expected = c.astype(np.float64) + a.T.astype(np.float64) @ b.astype(np.float64)
    microkernel.gemm_6x2v_once(c, a, b, k)
    np.testing.assert_allclose(c, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_fma_peak_runs_every_thread_block(rng):
    c, a, b = microkernel.operands(k=16, threads=3)
    microkernel.fma_peak(c, a, b, 2)
    expected = 2 * (a.T.astype(np.float64) @ b.astype(np.float64))
    for block in c:
        np.testing.assert_allclose(block, expected, rtol=1e-5, atol=1e-9)


def test_the_micro_kernel_is_packed_fmas_on_vector_registers():
    # Compiled afresh: numba shows no assembly for a function loaded from its cache.
    fresh = njit(fastmath=True, boundscheck=False)(microkernel.gemm_6x2v_once.py_func)
    c, a, b = microkernel.operands(k=8)
    fresh(c[0], a, b, 8)
    asm = "\n".join(fresh.inspect_asm().values())
    register = {16: "zmm", 8: "ymm", 4: "xmm"}[LANES]
    packed = re.findall(rf"vfmadd\w*ps\s+[^\n]*{register}", asm)
    assert len(packed) >= 12, asm[:2000]  # at least one unrolled step: 12 FMAs
    assert not re.findall(r"vfmadd\w*ss", asm)  # no scalar FMA


@njit(fastmath=True, boundscheck=False)
def _dot(acc, d0, d1, d2, d3, x, at0, at1, at2, length):
    microkernel.dot_4x3(acc, d0, d1, d2, d3, x, x, x, at0, at1, at2, length)


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
    getattr(microkernel, tile)(y, planes, weights, offsets, dtype(0))
    expected = _positions_reference(planes, weights, offsets, channels, lq)
    np.testing.assert_allclose(y, expected, rtol=TOL[dtype], atol=TOL[dtype])


@njit(fastmath=True, boundscheck=False)
def _gather(tile, planes, weights, offsets, starts, zero):
    s0, s1, s2, s3, s4, s5 = starts
    microkernel.gather_6x2v(tile, planes, weights, offsets, s0, s1, s2, s3, s4, s5, zero)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gather_6x2v_broadcasts_pixels_against_channel_vectors(dtype, rng):
    offsets = np.array([0, 2, 11])
    starts = (0, 1, 4, 6, 9, 20)
    planes = rng.standard_normal(40).astype(dtype)
    weights = rng.standard_normal(len(offsets) * 2 * LANES).astype(dtype)
    tile = np.full((6, 2 * LANES), np.nan, dtype)
    _gather(tile, planes, weights, offsets, starts, dtype(0))
    w = weights.reshape(len(offsets), 2 * LANES).astype(np.float64)
    expected = np.array([sum(planes[s + o] * w[t] for t, o in enumerate(offsets)) for s in starts])
    np.testing.assert_allclose(tile, expected, rtol=TOL[dtype], atol=TOL[dtype])


@njit(fastmath=True, boundscheck=False)
def _outer(acc, plane, dy, starts, shift, step, row_stride, k0):
    microkernel.outer_3x4v(acc, plane, dy, starts, shift, step, row_stride, k0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outer_3x4v_sums_3_taps_against_4_channel_vectors(dtype, rng):
    positions, row_stride, k0, shift, step = 7, 5 * LANES, LANES, 2, 3
    starts = np.arange(positions) * 2
    plane = rng.standard_normal(40).astype(dtype)
    dy = rng.standard_normal(positions * row_stride).astype(dtype)
    acc = rng.standard_normal(12 * LANES).astype(dtype)
    expected = acc.astype(np.float64).reshape(3, 4 * LANES).copy()
    for p, s in enumerate(starts):
        row = dy[p * row_stride + k0 : p * row_stride + k0 + 4 * LANES].astype(np.float64)
        for j in range(3):
            expected[j] += plane[s + shift + j * step] * row
    _outer(acc, plane, dy, starts, shift, step, row_stride, k0)
    np.testing.assert_allclose(acc.reshape(3, 4 * LANES), expected, rtol=TOL[dtype], atol=TOL[dtype])


@njit
def _fold(products):
    return microkernel.samples_per_fold(products)


def test_the_fold_rule_sums_fold_products_per_lane_and_at_least_one_sample():
    assert _fold(1) == microkernel.FOLD_PRODUCTS
    assert _fold(microkernel.FOLD_PRODUCTS // 4) == 4
    assert _fold(10 * microkernel.FOLD_PRODUCTS) == 1
    assert _fold(0) == microkernel.FOLD_PRODUCTS  # never a division by zero
