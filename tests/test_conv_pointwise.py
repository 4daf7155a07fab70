"""The 1x1 path (conv_pointwise.py: matrix products on the NCHW planes, on our micro-kernel)
against float64 references and against the direct convolutions that take 1x1 layers without it:
same output and gradients, with channel and position counts that fill no block (K past a panel
of 6, C past a task of 3, positions past a block of 2 LANES), no bias, a frozen weight and a
first layer; independent of the thread count."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.kernels.cpu import conv_pointwise

from helpers import at_all_threads_and_one, conv2d_grads_ref, conv2d_ref

CASES = [
    dict(n=5, c=3, k=4, hw=(6, 5), bias=True),
    dict(n=17, c=40, k=8, hw=(7, 7), bias=False),
    dict(n=3, c=7, k=13, hw=(9, 11), bias=True),
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


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c['n']}c{c['c']}k{c['k']}hw{c['hw'][0]}")
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_every_pass_matches_the_float64_references(case, dtype, tol):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((case["n"], case["c"]) + case["hw"]).astype(dtype)
    w = rng.standard_normal((case["k"], case["c"], 1, 1)).astype(dtype)
    b = rng.standard_normal(case["k"]).astype(dtype)
    expected = conv2d_ref(x, w, b)
    out = np.full(expected.shape, np.nan, dtype)
    conv_pointwise.conv2d_forward(out, x, w, b)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * np.abs(expected).max())
    dy = rng.standard_normal(expected.shape).astype(dtype)
    dx_ref, dw_ref, db_ref = conv2d_grads_ref(dy, x, w, (0, 0))
    dx, dw, db = np.full(x.shape, np.nan, dtype), np.ones(w.shape, dtype), np.ones(b.shape, dtype)
    conv_pointwise.conv2d_backward(dx, dw, db, dy, x, w)
    np.testing.assert_allclose(dx, dx_ref, rtol=tol, atol=tol * np.abs(dx_ref).max())
    np.testing.assert_allclose(dw - 1, dw_ref, rtol=tol, atol=tol * np.abs(dw_ref).max())
    np.testing.assert_allclose(db - 1, db_ref, rtol=tol, atol=tol * np.abs(db_ref).max())


def test_results_do_not_depend_on_the_thread_count():
    for a, b in zip(*at_all_threads_and_one(lambda: _run(CASES[1], True, np.float32))):
        np.testing.assert_array_equal(a, b)
