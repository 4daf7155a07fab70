"""The GEMM register tiles (kernels/cpu/microkernel.py), each called on its own against a float64
NumPy computation: the GEMM tile (and its assembly: packed FMAs on vector registers, no scalar
ones), the fold rule, and fma_peak."""

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


@njit
def _fold(products):
    return microkernel.samples_per_fold(products)


def test_the_fold_rule_sums_fold_products_per_lane_and_at_least_one_sample():
    assert _fold(1) == microkernel.FOLD_PRODUCTS
    assert _fold(microkernel.FOLD_PRODUCTS // 4) == 4
    assert _fold(10 * microkernel.FOLD_PRODUCTS) == 1
    assert _fold(0) == microkernel.FOLD_PRODUCTS  # never a division by zero
