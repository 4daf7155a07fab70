"""The 1x1 entries (kernels/cpu/conv/pointwise.py: matrix products on the NCHW planes, on our
micro-kernel; "subsample" for strided ones) on every geometry of the shared list they accept,
against float64 references; and through the layer, against the direct convolution that takes 1x1
layers without them (NUMBACNN_CONV=direct_channels): same output and gradients, with channel and
position counts that fill no block, no bias, a frozen weight and a first layer; independent of the
thread count."""

import numpy as np
import pytest

import numbacnn as nc

from conv_cases import accepted, case_id, check_against_references, check_skipped_gradients
from helpers import FLOAT_TOLERANCES, at_all_threads_and_one

CASES = [
    dict(n=5, c=3, k=4, hw=(6, 5), bias=True),
    dict(n=17, c=40, k=8, hw=(7, 7), bias=False),
    dict(n=3, c=7, k=13, hw=(9, 11), bias=True),
    dict(n=2, c=8, k=8, hw=(4, 4), bias=True),
    dict(n=3, c=6, k=5, hw=(1, 1), bias=True),  # after global pooling
]


@pytest.mark.parametrize("name", ["pointwise", "subsample"])
def test_each_entry_takes_layers_of_the_list(name):
    assert len(accepted(name)) >= 3


@pytest.mark.parametrize(
    "name, case", [(n, c) for n in ("pointwise", "subsample") for c in accepted(n)], ids=lambda v: str(v)
)
@pytest.mark.parametrize("dtype, tol", FLOAT_TOLERANCES)
def test_every_pass_matches_the_float64_references(name, case, dtype, tol, rng):
    check_against_references(name, case, dtype, tol, rng)


@pytest.mark.parametrize("name", ["pointwise", "subsample"])
def test_skipped_gradients_are_not_computed(name, rng):
    check_skipped_gradients(name, accepted(name)[0], rng)


def _run(case, entry, dtype, monkeypatch, frozen=False, first=False):
    """Output and gradients of a 1x1 Conv2d with every convolution forced to ``entry`` (None: the
    table's own choice)."""
    rng = np.random.default_rng(0)
    if entry is None:
        monkeypatch.delenv("NUMBACNN_CONV", raising=False)
    else:
        monkeypatch.setenv("NUMBACNN_CONV", entry)
    nc.manual_seed(1)
    layer = nc.layers.Conv2d(case["c"], case["k"], 1, bias=case["bias"]).to(dtype)
    layer.weight.requires_grad = not frozen
    layer.input_grad = not first
    x = rng.standard_normal((case["n"], case["c"]) + case["hw"]).astype(dtype)
    y = layer.forward(x).copy()
    dx = layer.backward(rng.standard_normal(y.shape).astype(dtype))
    grads = [p.grad.copy() for p in layer.parameters() if p.requires_grad]
    return [y] + ([] if dx is None else [dx.copy()]) + grads


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c['n']}c{c['c']}k{c['k']}hw{c['hw'][0]}")
@pytest.mark.parametrize("dtype,tol", FLOAT_TOLERANCES)
def test_pointwise_equals_the_direct_convolution(case, dtype, tol, monkeypatch):
    for a, b in zip(_run(case, None, dtype, monkeypatch), _run(case, "direct_channels", dtype, monkeypatch)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("frozen,first", [(True, False), (False, True)], ids=["frozen", "first_layer"])
def test_skipped_gradients_through_the_layer(frozen, first, monkeypatch):
    results = [_run(CASES[1], entry, np.float64, monkeypatch, frozen, first) for entry in (None, "direct_channels")]
    assert len(results[0]) == len(results[1]) == 2  # y and dx, or y and dW (no bias here)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_results_do_not_depend_on_the_thread_count(monkeypatch):
    for a, b in zip(*at_all_threads_and_one(lambda: _run(CASES[1], None, np.float32, monkeypatch))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", accepted("subsample"), ids=case_id)
def test_subsample_leaves_zero_gradient_where_no_window_reads(case, rng):
    """A stride larger than the 1x1 kernel skips pixels: their input gradient is 0."""
    from numbacnn.kernels.cpu.conv.dispatch import BY_NAME

    from conv_cases import arrays, geometry

    x, w, _ = arrays(case, np.float32, rng)
    sh, sw = case[6]
    dy = rng.standard_normal((x.shape[0], w.shape[0], -(-x.shape[2] // sh), -(-x.shape[3] // sw))).astype(np.float32)
    dx = np.full(x.shape, np.nan, np.float32)
    BY_NAME["subsample"].backward(dx, None, None, dy, x, w, geometry(case))
    skipped = np.ones(x.shape[2:], bool)
    skipped[::sh, ::sw] = False
    assert np.all(dx[:, :, skipped] == 0) and np.isfinite(dx).all()
