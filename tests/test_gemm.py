"""Matrix products on the micro-kernel (kernels/cpu/gemm.py: matmul), against float64 NumPy: row
and column counts that fill no panel or tile, transposed and strided views, accumulation, float32
and float64, and results independent of the thread count. (Linear's use of it: test_linear.py.)"""

import numpy as np
import pytest

from numbacnn.kernels.cpu.gemm import matmul
from numbacnn.kernels.cpu.microkernel import COLUMNS, ROWS

from helpers import FLOAT_TOLERANCES, at_all_threads_and_one

SHAPES = [(1, 1, 1), (ROWS, 7, COLUMNS), (ROWS + 1, 9, COLUMNS + 1), (20, 33, 3 * COLUMNS - 1), (64, 120, 84)]


@pytest.mark.parametrize("m, k, n", SHAPES, ids=str)
@pytest.mark.parametrize("dtype, tol", FLOAT_TOLERANCES)
def test_a_product_matches_float64_numpy(m, k, n, dtype, tol, rng):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = np.full((m, n), np.nan, dtype)
    matmul(c, a, b)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * np.abs(expected).max())


def test_transposed_and_strided_views_and_accumulation(rng):
    a = rng.standard_normal((9, 14)).astype(np.float32)
    b = rng.standard_normal((11, 9 * 2)).astype(np.float32)
    c = rng.standard_normal((14, 11)).astype(np.float32)
    start = c.astype(np.float64)
    # c += a' (14, 9) @ b[:, ::2]' (9, 11): both operands non-contiguous views.
    matmul(c, a.T, b[:, ::2].T, accumulate=True)
    expected = start + a.T.astype(np.float64) @ b[:, ::2].T.astype(np.float64)
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5)


def test_results_do_not_depend_on_the_thread_count(rng):
    a = rng.standard_normal((45, 70)).astype(np.float32)
    b = rng.standard_normal((70, 40)).astype(np.float32)

    def run():
        c = np.empty((45, 40), np.float32)
        matmul(c, a, b)
        return (c,)

    for many, one in zip(*at_all_threads_and_one(run)):
        np.testing.assert_array_equal(many, one)
