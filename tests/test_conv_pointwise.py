"""The 1x1 path (conv_pointwise.py: per-sample GEMMs on the NCHW planes) against the paths that
took 1x1 layers before it: same output and gradients, with chunks of samples (several, and a
short last one), no bias, a frozen weight and a first layer; independent of the thread count."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.kernels.cpu import blas, conv_pointwise

from helpers import at_all_threads_and_one

pytestmark = pytest.mark.skipif(not blas.available(), reason="numpy's OpenBLAS (64-bit interface) not found")

CASES = [
    dict(n=5, c=3, k=4, hw=(6, 5), bias=True),
    dict(n=17, c=40, k=8, hw=(7, 7), bias=False),  # chunks of 16 samples: two, the last of one
    dict(n=2, c=8, k=8, hw=(4, 4), bias=True),
    dict(n=3, c=6, k=5, hw=(1, 1), bias=True),  # after global pooling
]


def _run(case, enabled, dtype, frozen=False, first=False):
    rng = np.random.default_rng(0)
    conv_pointwise.ENABLED = enabled
    try:
        nc.manual_seed(1)
        layer = nc.layers.Conv2d(case["c"], case["k"], 1, bias=case["bias"]).to(dtype)
        layer.weight.requires_grad = not frozen
        layer.input_grad = not first
        x = rng.standard_normal((case["n"], case["c"]) + case["hw"]).astype(dtype)
        y = layer.forward(x).copy()
        dx = layer.backward(rng.standard_normal(y.shape).astype(dtype))
        grads = [p.grad.copy() for p in layer.parameters() if p.requires_grad]
        return [y] + ([] if dx is None else [dx.copy()]) + grads
    finally:
        conv_pointwise.ENABLED = True


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c['n']}c{c['c']}k{c['k']}hw{c['hw'][0]}")
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_pointwise_path_equals_the_previous_paths(case, dtype, tol):
    for a, b in zip(_run(case, True, dtype), _run(case, False, dtype)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("frozen,first", [(True, False), (False, True)], ids=["frozen", "first_layer"])
def test_skipped_gradients(frozen, first):
    results = [_run(CASES[1], enabled, np.float64, frozen, first) for enabled in (True, False)]
    assert len(results[0]) == len(results[1]) == 2  # y and dx, or y and dW (no bias here)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_the_path_is_taken_with_openblas_at_one_thread(monkeypatch):
    before = blas.get_threads()
    calls = []
    real = conv_pointwise._forward
    monkeypatch.setattr(conv_pointwise, "_forward", lambda *a: calls.append(blas.get_threads()) or real(*a))
    _run(CASES[0], True, np.float32)
    assert calls == [1] and blas.get_threads() == before


def test_results_do_not_depend_on_the_thread_count():
    for a, b in zip(*at_all_threads_and_one(lambda: _run(CASES[1], True, np.float32))):
        np.testing.assert_array_equal(a, b)
