"""A ReLU followed by max pooling runs as relu(pool(x)) inside Sequential (the ReLU on the pooled
output only): the same outputs and gradients, bit for bit, as the two layers one after the other."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn import layers as L

from helpers import gradient_check


def _unfused(model):
    """Give every ReLU an instance-level forward (as inspect.feature_maps does): no fusion."""
    for _, layer in model.named_modules():
        if type(layer) is L.ReLU:
            layer.forward = layer.forward
    return model


def _run(model, x, dy_seed=1):
    model.zero_grad()
    y = model.forward(x).copy()
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(x.dtype)
    dx = model.backward(dy)
    return [y, None if dx is None else dx.copy()] + [p.grad.copy() for _, p in model.named_parameters()]


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2), (2, 1)])
def test_fused_and_unfused_agree_bit_for_bit(kernel, stride, rng):
    """Windows wholly negative (ReLU's gradient 0 across them), ties, overlapping windows, a NaN."""
    make = lambda: L.Sequential(  # noqa: E731
        L.Conv2d(2, 4, 3, padding=1), L.ReLU(), L.MaxPool2d(kernel, stride), L.Conv2d(4, 3, 3), L.ReLU()
    )
    fused, plain = make(), make()
    plain.load_state_dict(fused.state_dict())
    _unfused(plain)
    x = rng.standard_normal((3, 2, 10, 10)).astype(np.float32)
    x[0, :, :4, :4] = -5.0  # after the convolution: whole windows below zero
    for a, b in zip(_run(fused, x), _run(plain, x)):
        np.testing.assert_array_equal(a, b)
    assert fused._relu_pools == [1] and plain._relu_pools == []
    x[1, 0, 5, 5] = np.nan
    np.testing.assert_array_equal(fused.forward(x), plain.forward(x))


def test_the_fused_pair_passes_central_differences(rng):
    pair = L.Sequential(L.ReLU(), L.MaxPool2d(2))
    x = rng.standard_normal((2, 3, 6, 6))
    x += np.sign(x) * 0.05  # away from ReLU's kink
    assert gradient_check(pair, x) > 0 and pair._relu_pools == [0]


def test_lenet5_runs_its_relus_inside_the_pooling_and_feature_maps_still_see_them(rng):
    model = nc.models.lenet5()
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    model.forward(x)
    assert model._relu_pools == [1, 4]
    maps = nc.inspect.feature_maps(model, x, layers=["1", "2"])
    assert (maps["1"] >= 0).all()
    np.testing.assert_array_equal(maps["2"], maps["1"].reshape(2, 6, 14, 2, 14, 2).max(axis=(3, 5)))


def test_backward_after_relu_without_its_forward_is_refused(rng):
    pool = L.MaxPool2d(2)
    pool.forward(rng.standard_normal((1, 1, 4, 4)).astype(np.float32))
    with pytest.raises(RuntimeError, match="forward_after_relu"):
        pool.backward_after_relu(np.ones((1, 1, 2, 2), np.float32))
