"""The one-pool convolution (conv_pool.py) against the np.matmul paths it replaces: same output and
gradients on shapes that exercise chunking, strides, padding, rectangular kernels and no bias;
OpenBLAS's thread count restored afterwards."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.kernels.cpu import blas, conv_chanvec, conv_pool, conv_simd

from helpers import at_all_threads_and_one

CASES = [
    dict(n=5, c=3, k=4, hw=(9, 9), ks=3, stride=1, padding=1, bias=True),  # chunks of a few samples
    dict(n=3, c=4, k=6, hw=(8, 7), ks=3, stride=2, padding=1, bias=False),
    dict(n=2, c=2, k=3, hw=(7, 9), ks=(3, 2), stride=(2, 1), padding=(1, 2), bias=True),
    dict(n=17, c=6, k=16, hw=(14, 14), ks=5, stride=1, padding=0, bias=True),  # LeNet conv2, uneven chunks
    dict(n=2, c=8, k=8, hw=(4, 4), ks=1, stride=1, padding=0, bias=False),
]


def _run(case, enabled, dtype, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    # The direct convolutions come first in the dispatch: off, so that stride-1 cases reach conv_pool.
    conv_pool.ENABLED, conv_simd.ENABLED, conv_chanvec.ENABLED = enabled, False, False
    try:
        nc.manual_seed(1)
        layer = nc.layers.Conv2d(case["c"], case["k"], case["ks"], stride=case["stride"], padding=case["padding"],
                                 bias=case["bias"]).to(dtype)  # fmt: skip
        x = rng.standard_normal((case["n"], case["c"]) + case["hw"]).astype(dtype)
        y = layer.forward(x).copy()
        dx = layer.backward(rng.standard_normal(y.shape).astype(dtype)).copy()
        return y, dx, [p.grad.copy() for p in layer.parameters()]
    finally:
        conv_pool.ENABLED = conv_simd.ENABLED = conv_chanvec.ENABLED = True


@pytest.mark.skipif(not blas.available(), reason="numpy's OpenBLAS (64-bit interface) not found")
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c['n']}c{c['c']}k{c['k']}s{c['stride']}")
# float32: the two paths sum dW over N*OH*OW products in different orders.
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-12)])
def test_pool_path_equals_the_matmul_path(case, dtype, tol):
    pooled, plain = _run(case, True, dtype), _run(case, False, dtype)
    for a, b in zip(pooled[:2] + tuple(pooled[2]), plain[:2] + tuple(plain[2])):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.skipif(not blas.available(), reason="numpy's OpenBLAS (64-bit interface) not found")
def test_openblas_threads_are_restored_and_the_path_is_taken(monkeypatch):
    before = blas.get_threads()
    calls = []
    real = conv_pool.forward
    monkeypatch.setattr(conv_pool, "forward", lambda *a: calls.append(blas.get_threads()) or real(*a))
    _run(CASES[0], True, np.float32)
    assert calls == [1] and blas.get_threads() == before


@pytest.mark.skipif(not blas.available(), reason="numpy's OpenBLAS (64-bit interface) not found")
def test_results_do_not_depend_on_the_thread_count():
    """Exact resume holds even when another training makes this one drop to fewer threads."""
    results = at_all_threads_and_one(lambda: _run(CASES[3], True, np.float32))
    for a, b in zip(results[0][:2] + tuple(results[0][2]), results[1][:2] + tuple(results[1][2])):
        np.testing.assert_array_equal(a, b)
