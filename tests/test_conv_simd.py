"""The direct convolutions on explicit vectors (kernels/cpu/conv_simd.py, vectorised over positions,
and conv_chanvec.py, over output channels), each called directly on every geometry it accepts (not
only those the dispatcher sends it): forward, input, weight and bias gradients against independent
float64 references, in float32 and float64; results independent of the thread count; compiled for
older CPUs; and the dispatcher's choice."""

import numpy as np
import pytest

from numbacnn.kernels.cpu import conv_chanvec, conv_simd

from helpers import at_all_threads_and_one, conv2d_grads_ref, conv2d_ref

# (N, C, K, H, W, (KH, KW), (PH, PW)): kernel sizes 1-5, rectangular kernels, every padding from 0
# to KH-1, channel counts that are and are not multiples of the 4-channel tile, planes smaller
# and larger than a tile of positions.
CASES = [
    (2, 3, 5, 7, 9, (3, 3), (1, 1)),
    (2, 6, 16, 14, 14, (5, 5), (0, 0)),
    (3, 1, 6, 12, 12, (5, 5), (2, 2)),
    (1, 4, 4, 8, 8, (1, 1), (0, 0)),
    (3, 2, 7, 5, 6, (3, 3), (2, 2)),
    (2, 5, 3, 6, 11, (3, 2), (2, 1)),
    (2, 8, 8, 4, 4, (3, 3), (1, 0)),
    (1, 3, 9, 17, 3, (2, 3), (0, 2)),
]


class StrideOne:
    """conv_chanvec at stride 1, dilation 1, groups 1, called as conv_simd is."""

    @staticmethod
    def conv2d_forward(out, x, w, b, padding):
        conv_chanvec.conv2d_forward(out, x, w, b, (1, 1), padding, (1, 1), 1)

    @staticmethod
    def conv2d_backward(dx, dw, db, dy, x, w, padding):
        conv_chanvec.conv2d_backward(dx, dw, db, dy, x, w, (1, 1), padding, (1, 1), 1)


MODULES = pytest.mark.parametrize("module", [conv_simd, StrideOne], ids=["conv_simd", "conv_chanvec"])


def _case(case, dtype, rng):
    n, c, k, h, w, kernel, _ = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c) + kernel).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype)
    return x, weight, bias


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c[0]}c{c[1]}k{c[2]}-{c[3]}x{c[4]}-k{c[5]}-p{c[6]}")
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@MODULES
def test_every_pass_matches_the_float64_references(module, case, dtype, tol, rng):
    x, w, b = _case(case, dtype, rng)
    padding = case[6]
    expected = conv2d_ref(x, w, b, padding=padding)
    out = np.empty(expected.shape, dtype)
    module.conv2d_forward(out, x, w, b, padding)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * scale)
    module.conv2d_forward(out, x, w, None, padding)
    np.testing.assert_allclose(out, expected - b.reshape(1, -1, 1, 1), rtol=tol, atol=tol * scale)

    dy = rng.standard_normal(expected.shape).astype(dtype)
    dx_ref, dw_ref, db_ref = conv2d_grads_ref(dy, x, w, padding)
    dx = np.full(x.shape, np.nan, dtype)  # overwritten
    dw, db = np.ones(w.shape, dtype), np.ones(b.shape, dtype)  # accumulated
    module.conv2d_backward(dx, dw, db, dy, x, w, padding)
    np.testing.assert_allclose(dx, dx_ref, rtol=tol, atol=tol * np.abs(dx_ref).max())
    np.testing.assert_allclose(dw - 1, dw_ref, rtol=tol, atol=tol * np.abs(dw_ref).max())
    np.testing.assert_allclose(db - 1, db_ref, rtol=tol, atol=tol * np.abs(db_ref).max())


@MODULES
def test_skipped_gradients_are_not_touched(module, rng):
    x, w, b = _case(CASES[0], np.float32, rng)
    dy = rng.standard_normal((2, 5, 7, 9)).astype(np.float32)
    dx = np.full(x.shape, 7.0, np.float32)
    module.conv2d_backward(dx, None, None, dy, x, w, (1, 1))
    np.testing.assert_allclose(dx, conv2d_grads_ref(dy, x, w, (1, 1))[0], rtol=1e-5, atol=1e-5)
    dw = np.zeros(w.shape, np.float32)
    module.conv2d_backward(None, dw, None, dy, x, w, (1, 1))
    assert np.abs(dw).max() > 0


@MODULES
def test_results_do_not_depend_on_the_thread_count(module, rng):
    x, w, b = _case((9, 6, 10, 12, 12, (3, 3), (1, 1)), np.float32, rng)
    dy = rng.standard_normal((9, 10, 12, 12)).astype(np.float32)

    def run():
        out, dx = np.empty((9, 10, 12, 12), np.float32), np.empty_like(x)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        module.conv2d_forward(out, x, w, b, (1, 1))
        module.conv2d_backward(dx, dw, db, dy, x, w, (1, 1))
        return out, dx, dw, db

    for many, one in zip(*at_all_threads_and_one(run)):
        np.testing.assert_array_equal(many, one)


def test_which_layers_it_takes():
    x = np.zeros((2, 16, 32, 32), np.float32)
    w = np.zeros((16, 16, 3, 3), np.float32)
    assert conv_simd.usable(x, w, (1, 1), (1, 1), (1, 1), 1)
    assert not conv_simd.usable(x, w, (2, 2), (1, 1), (1, 1), 1)  # stride
    assert not conv_simd.usable(x, w, (1, 1), (2, 2), (2, 2), 1)  # dilation
    assert not conv_simd.usable(x, w[:, :8], (1, 1), (1, 1), (1, 1), 2)  # groups
    assert not conv_simd.usable(x, w, (1, 1), (3, 3), (1, 1), 1)  # padding past the kernel
    assert not conv_simd.usable(x[:, :, :8, :8], w, (1, 1), (1, 1), (1, 1), 1)  # 8x8: conv_chanvec's
    # Under 200 positions, layers whose channels fill conv_chanvec's blocks go there (ResNet's 14x14
    # stage at 32 channels); LeNet's conv2 (6 -> 16 channels, 10x10) stays here.
    block = conv_simd.CHANVEC_BLOCK
    wide = np.zeros((2 * block, 2 * block, 3, 3), np.float32)
    assert not conv_simd.usable(np.zeros((2, 2 * block, 14, 14), np.float32), wide, (1, 1), (1, 1), (1, 1), 1)
    assert conv_simd.usable(np.zeros((2, 2 * block, 16, 16), np.float32), wide, (1, 1), (1, 1), (1, 1), 1)
    lenet2 = np.zeros((16, 6, 5, 5), np.float32)
    assert conv_simd.usable(np.zeros((2, 6, 14, 14), np.float32), lenet2, (1, 1), (0, 0), (1, 1), 1)


def test_verbose_names_the_implementation_each_layer_ran(monkeypatch, capsys, rng):
    import numbacnn as nc
    from numbacnn.kernels.cpu import conv

    monkeypatch.setenv("NUMBACNN_VERBOSE", "1")
    monkeypatch.setattr(conv, "_reported", set())
    for layer, shape, implementation in [
        (nc.layers.Conv2d(4, 8, 3, padding=1), (2, 4, 12, 12), "conv_simd"),
        (
            nc.layers.Conv2d(4, 8, 3, padding=1),
            (2, 4, 6, 6),
            "conv_chanvec",
        ),
        (nc.layers.Conv2d(4, 8, 1), (2, 4, 12, 12), "conv_pointwise"),
        (nc.layers.Conv2d(4, 8, 1, stride=2), (2, 4, 12, 12), "subsample"),
        (nc.layers.Conv2d(4, 8, 3, stride=2, padding=1), (2, 4, 12, 12), "conv_chanvec"),
        (nc.layers.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2), (2, 4, 12, 12), "conv_chanvec"),
    ]:
        y = layer(rng.standard_normal(shape).astype(np.float32))
        layer.backward(np.ones(y.shape, np.float32))
        lines = [line for line in capsys.readouterr().err.splitlines() if "conv2d" in line]
        assert [line.split()[2] for line in lines] == ["forward", "backward"], lines
        assert all(line.endswith(f": {implementation}") for line in lines), lines


ISA_PROBE = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from helpers import conv2d_grads_ref, conv2d_ref
from numbacnn.kernels.cpu import conv_chanvec, conv_simd
from numbacnn.kernels.cpu.simd import LANES
{adapter}
rng = np.random.default_rng(0)
worst = 0.0
for (n, c, k, h, w, kernel, padding), module in zip({cases!r} * 2, [conv_simd] * 5 + [StrideOne] * 5):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((k, c) + kernel).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    out = np.empty(conv2d_ref(x, weight, bias, padding=padding).shape, np.float32)
    module.conv2d_forward(out, x, weight, bias, padding)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    dx, dw, db = np.empty_like(x), np.zeros_like(weight), np.zeros_like(bias)
    module.conv2d_backward(dx, dw, db, dy, x, weight, padding)
    expected = (conv2d_ref(x, weight, bias, padding=padding),) + tuple(conv2d_grads_ref(dy, x, weight, padding))
    for got, want in zip((out, dx, dw, db), expected):
        worst = max(worst, float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
for n, c, k, h, w, kernel, stride, padding, dilation, groups in {general!r}:
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((k, c // groups) + kernel).astype(np.float32)
    geometry = (stride, padding, dilation, groups)
    out = np.empty(conv2d_ref(x, weight, None, *geometry).shape, np.float32)
    conv_chanvec.conv2d_forward(out, x, weight, None, *geometry)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    dx, dw = np.empty_like(x), np.zeros_like(weight)
    conv_chanvec.conv2d_backward(dx, dw, None, dy, x, weight, *geometry)
    grads = conv2d_grads_ref(dy, x, weight, padding, stride, dilation, groups)
    expected = (conv2d_ref(x, weight, None, *geometry),) + grads[:2]
    for got, want in zip((out, dx, dw), expected):
        worst = max(worst, float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
print(LANES, worst)
"""


@pytest.mark.slow
@pytest.mark.parametrize("cpu, lanes", [("haswell", 8), ("x86-64", 4)])
def test_every_pass_is_right_compiled_for_an_older_cpu_with_an_empty_cache(cpu, lanes, tmp_path):
    """AVX2 and plain x86-64 (both variables set: the name alone keeps the host's features): the
    vectors narrow to the target's registers, and forward and gradients still match the references."""
    import inspect
    import os
    import subprocess
    import sys

    tests = os.path.dirname(os.path.abspath(__file__))
    from test_conv_chanvec import CASES as GENERAL

    adapter = inspect.getsource(StrideOne)
    probe = ISA_PROBE.format(tests=tests, cases=CASES[:5], general=GENERAL[:4], adapter=adapter)
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES="", NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    got_lanes, error = done.stdout.split()
    assert int(got_lanes) == lanes and float(error) < 1e-5, done.stdout
