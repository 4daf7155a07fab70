"""Linear and Flatten: reference, gradients, float32 vs float64."""

import numpy as np
import pytest

import numbacnn as nc

from helpers import gradient_check


@pytest.mark.parametrize("n,fin,fout,bias", [(1, 3, 2, True), (5, 7, 4, True), (4, 6, 9, False), (2, 1, 1, True)])
def test_linear_reference_and_gradients(n, fin, fout, bias, rng):
    layer = nc.layers.Linear(fin, fout, bias).to(np.float64)
    x = rng.standard_normal((n, fin))
    ref = x @ layer.weight.data.T + (layer.bias.data if bias else 0)
    np.testing.assert_allclose(layer(x), ref, rtol=1e-12, atol=1e-12)
    assert layer.weight.shape == (fout, fin)
    assert gradient_check(layer, x) == x.size + fin * fout + (fout if bias else 0)


def test_linear_float32_agrees_with_float64(rng):
    l32 = nc.layers.Linear(20, 7)
    l64 = nc.layers.Linear(20, 7)
    l64.load_state_dict(l32.state_dict())
    l64.to(np.float64)
    x = rng.standard_normal((6, 20))
    np.testing.assert_allclose(l32(x.astype(np.float32)), l64(x), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal((6, 7))
    np.testing.assert_allclose(l32.backward(dy.astype(np.float32)), l64.backward(dy), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(l32.bias.grad, l64.bias.grad, rtol=1e-5, atol=1e-5)


def test_flatten_is_a_view_and_its_gradient_restores_the_shape(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    layer = nc.layers.Flatten().to(np.float64)
    y = layer(x)
    assert y.shape == (2, 60) and np.shares_memory(x, y)
    assert layer.backward(np.ones((2, 60))).shape == x.shape
    assert gradient_check(layer, x) == x.size
