"""Conv2d: NumPy reference, float64 gradient check, float32 vs float64."""

import numpy as np
import pytest

import numbacnn as nc

from helpers import conv2d_ref, gradient_check

# (N, C, H, W, K, kernel, stride, padding, dilation, groups, bias)
CASES = [
    (1, 1, 5, 5, 1, (3, 3), (1, 1), (0, 0), (1, 1), 1, True),
    (2, 3, 7, 6, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    (2, 4, 9, 8, 6, (3, 2), (2, 1), (1, 0), (1, 1), 2, False),
    (1, 4, 9, 9, 4, (3, 3), (1, 2), (2, 2), (2, 2), 4, True),  # depthwise, dilated
    (3, 2, 6, 7, 3, (1, 1), (2, 2), (0, 0), (1, 1), 1, True),  # 1x1 projection
    (3, 5, 4, 6, 7, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),  # 1x1 stride 1: the pointwise entry
    (2, 6, 5, 5, 6, (5, 5), (1, 1), (2, 2), (1, 1), 3, True),
]


def random_cases(count, seed=7):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        groups = int(rng.choice([1, 1, 2, 3]))
        c = groups * int(rng.integers(1, 4))
        k = groups * int(rng.integers(1, 4))
        kernel = tuple(int(v) for v in rng.integers(1, 4, size=2))
        stride = tuple(int(v) for v in rng.integers(1, 3, size=2))
        padding = tuple(int(v) for v in rng.integers(0, 3, size=2))
        dilation = tuple(int(v) for v in rng.integers(1, 3, size=2))
        h, w = (int(v) for v in rng.integers(4, 10, size=2))
        if any((s + 2 * p - d * (kk - 1) - 1) < 0 for s, p, d, kk in zip((h, w), padding, dilation, kernel)):
            continue
        out.append(
            (int(rng.integers(1, 4)), c, h, w, k, kernel, stride, padding, dilation, groups, bool(rng.integers(0, 2)))
        )
    return out


ALL_CASES = CASES + random_cases(10)


def make(case, dtype=np.float32):
    n, c, h, w, k, kernel, stride, padding, dilation, groups, bias = case
    layer = nc.layers.Conv2d(c, k, kernel, stride, padding, dilation, groups, bias).to(dtype)
    x = np.random.default_rng(0).standard_normal((n, c, h, w)).astype(dtype)
    return layer, x


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_forward_matches_reference(case):
    layer, x = make(case, np.float64)
    y = layer(x)
    b = None if layer.bias is None else layer.bias.data
    ref = conv2d_ref(x, layer.weight.data, b, layer.stride, layer.padding, layer.dilation, layer.groups)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_gradients(case):
    layer, x = make(case, np.float64)
    assert gradient_check(layer, x) > 0


@pytest.mark.parametrize("case", CASES, ids=str)
def test_float32_agrees_with_float64(case):
    layer32, x32 = make(case, np.float32)
    layer64, _ = make(case, np.float32)
    layer64.load_state_dict(layer32.state_dict())
    layer64.to(np.float64)
    x64 = x32.astype(np.float64)
    y32, y64 = layer32(x32), layer64(x64)
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-5)
    dy = np.random.default_rng(1).standard_normal(y32.shape)
    dx32 = layer32.backward(dy.astype(np.float32))
    dx64 = layer64.backward(dy)
    np.testing.assert_allclose(dx32, dx64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer32.weight.grad, layer64.weight.grad, rtol=1e-4, atol=1e-4)


def test_parameter_grads_accumulate_and_input_grad_overwrites():
    layer, x = make(CASES[1], np.float64)
    dy = np.ones(layer(x).shape)
    layer.zero_grad()
    dx1 = layer.backward(dy).copy()
    g1 = layer.weight.grad.copy()
    dx2 = layer.backward(dy).copy()
    np.testing.assert_allclose(layer.weight.grad, 2 * g1)
    np.testing.assert_allclose(dx2, dx1)


def test_weight_shapes_follow_pytorch():
    conv = nc.layers.Conv2d(6, 12, (3, 5), groups=3)
    assert conv.weight.shape == (12, 2, 3, 5)
    assert conv.bias.shape == (12,)
    bound = 1 / np.sqrt(2 * 3 * 5)
    assert np.abs(conv.weight.data).max() <= bound
    assert np.abs(conv.weight.data).max() > 0.5 * bound


def test_input_grad_can_be_skipped_without_changing_weight_grads():
    layer, x = make(CASES[2], np.float64)
    dy = np.random.default_rng(3).standard_normal(layer(x).shape)
    layer.zero_grad()
    layer.backward(dy)
    full = layer.weight.grad.copy()
    layer.zero_grad()
    layer.input_grad = False
    assert layer.backward(dy) is None
    np.testing.assert_array_equal(layer.weight.grad, full)


# First layers (input_grad=False: no input gradient asked for) with few taps and stride 1: LeNet-5's
# conv1, a ResNet stem on gray images, a dilated one.
FIRST_LAYER_CASES = [
    (2, 1, 8, 9, 3, (5, 5), (1, 1), (2, 2), (1, 1), 1, True),
    (3, 1, 7, 7, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, False),
    (2, 2, 9, 12, 2, (3, 3), (1, 1), (2, 2), (2, 2), 1, True),
]


@pytest.mark.parametrize("case", FIRST_LAYER_CASES, ids=str)
def test_a_first_layer_skips_the_input_gradient_and_keeps_its_weight_gradient(case):
    layer, x = make(case, np.float64)
    b = None if layer.bias is None else layer.bias.data
    ref = conv2d_ref(x, layer.weight.data, b, layer.stride, layer.padding, layer.dilation, layer.groups)
    np.testing.assert_allclose(layer(x), ref, rtol=1e-12, atol=1e-12)
    layer.input_grad = False
    gradient_check(layer, x, check_input_grad=False)
    # The same weight gradients as the pass that computes the input gradient too.
    dy = np.random.default_rng(5).standard_normal(ref.shape)
    grads = []
    for input_grad in (False, True):
        layer.input_grad = input_grad
        layer.zero_grad()
        layer(x)
        layer.backward(dy)
        grads.append([p.grad.copy() for _, p in layer.named_parameters()])
    for without_dx, with_dx in zip(*grads):
        np.testing.assert_allclose(without_dx, with_dx, rtol=1e-12, atol=1e-12)


# 1x1 layers with a stride (ResNet's projection shortcuts) run as the stride-1 layer on a copy of
# every stride-th pixel; odd sizes leave pixels no window reads (their gradient is 0).
STRIDED_1X1 = [
    (2, 3, 7, 9, 4, (1, 1), (2, 2), (0, 0), (1, 1), 1, True),
    (3, 4, 8, 5, 2, (1, 1), (2, 1), (0, 0), (1, 1), 1, False),
    (1, 2, 10, 10, 3, (1, 1), (3, 3), (0, 0), (1, 1), 1, True),
]


@pytest.mark.parametrize("case", STRIDED_1X1, ids=str)
def test_strided_1x1_subsamples(case, monkeypatch, capsys):
    from numbacnn.kernels import verbose

    monkeypatch.setenv("NUMBACNN_VERBOSE", "1")
    monkeypatch.setattr(verbose, "_reported", set())
    layer, x = make(case, np.float64)
    b = None if layer.bias is None else layer.bias.data
    ref = conv2d_ref(x, layer.weight.data, b, layer.stride, layer.padding, layer.dilation, layer.groups)
    np.testing.assert_allclose(layer(x), ref, rtol=1e-12, atol=1e-12)
    assert gradient_check(layer, x) > 0
    layer.input_grad = False
    assert gradient_check(layer, x, check_input_grad=False) > 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "conv2d" in line]
    assert any(line.endswith(": subsample") for line in lines), lines
