"""Activations and the fused residual add+ReLU: reference, gradients, float32 vs float64."""

import numpy as np
import pytest

import numbacnn as nc

from helpers import activation_ref, away_from_zero, gradient_check

L = nc.layers
ACTIVATIONS = [
    (L.ReLU, activation_ref("relu")),
    (lambda: L.LeakyReLU(0.1), activation_ref("leaky_relu", negative_slope=0.1)),
    (lambda: L.ELU(0.7), activation_ref("elu", alpha=0.7)),
    (L.Sigmoid, activation_ref("sigmoid")),
    (L.Tanh, activation_ref("tanh")),
]


@pytest.mark.parametrize("make,ref", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5), (1, 1, 1, 1)])
def test_reference_and_gradients(make, ref, shape, rng):
    x = away_from_zero(rng, shape) * 3
    layer = make().to(np.float64)
    np.testing.assert_allclose(layer(x), ref(x), rtol=1e-12, atol=1e-12)
    assert gradient_check(layer, x) == x.size


@pytest.mark.parametrize("make,ref", ACTIVATIONS)
def test_float32_agrees_with_float64(make, ref, rng):
    x = away_from_zero(rng, (4, 3, 5, 5)) * 3
    l32, l64 = make(), make().to(np.float64)
    np.testing.assert_allclose(l32(x.astype(np.float32)), l64(x), rtol=1e-6, atol=1e-6)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(l32.backward(dy.astype(np.float32)), l64.backward(dy), rtol=1e-5, atol=1e-6)


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]], dtype=np.float32)
    y = L.Sigmoid()(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [[0, 1.9287e-22, 0.5, 1, 1]], rtol=1e-3, atol=1e-30)


def test_fused_add_relu_kernels(rng):
    ops = nc.get_device("cpu").ops
    a, b = away_from_zero(rng, (2, 3, 4, 4)), away_from_zero(rng, (2, 3, 4, 4))
    b = np.where(np.abs(a + b) < 0.05, b + 0.2, b)  # keep a + b away from the kink
    out = np.empty_like(a)
    ops.add_relu_forward(out, a, b)
    np.testing.assert_allclose(out, np.maximum(a + b, 0))
    dy = rng.standard_normal(a.shape)
    dx = np.empty_like(a)
    ops.add_relu_backward(dx, dy, out)
    np.testing.assert_allclose(dx, np.where(a + b > 0, dy, 0))
    ops.add_forward(out, a, b)
    np.testing.assert_allclose(out, a + b)


def test_softmax_reference_gradients_and_stability(rng):
    x = rng.standard_normal((4, 7)) * 3
    layer = L.Softmax(dim=1).to(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(layer(x), e / e.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-15)
    assert gradient_check(layer, x) == x.size
    big = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    np.testing.assert_allclose(L.Softmax()(big), [[1, 0, 0]], atol=1e-30)
    with pytest.raises(ValueError, match="dim=1"):
        L.Softmax(dim=0)
    with pytest.raises(ValueError):
        L.Softmax()(np.zeros((2, 3, 4), np.float32))
