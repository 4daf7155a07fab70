"""Dropout: inverted scaling, seeded masks, gradients, eval identity."""

import numpy as np
import pytest

import numbacnn as nc

from helpers import gradient_check


def test_mask_statistics_and_scaling(rng):
    x = np.ones((64, 1000), np.float32)
    layer = nc.layers.Dropout(0.3)
    y = layer(x)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)


def test_same_seed_same_mask_and_fresh_mask_per_call():
    x = np.ones((8, 50), np.float32)
    nc.manual_seed(3)
    a = nc.layers.Dropout(0.5)
    nc.manual_seed(3)
    b = nc.layers.Dropout(0.5)
    ya1 = a(x).copy()
    np.testing.assert_array_equal(ya1, b(x))
    assert not np.array_equal(ya1, a(x))


def test_eval_is_identity_and_gradient_passes_through(rng):
    layer = nc.layers.Dropout(0.5).eval()
    x = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_gradient_with_a_fixed_mask(rng):
    layer = nc.layers.Dropout(0.4)

    def fix_mask(lay):
        lay.calls = 0

    assert gradient_check(layer, rng.standard_normal((4, 3, 3)), before_forward=fix_mask) == 36


@pytest.mark.parametrize("p", [-0.1, 1.0, 2])
def test_invalid_probability(p):
    with pytest.raises(ValueError, match="p must be in"):
        nc.layers.Dropout(p)


def test_call_counter_is_a_nonpersistent_buffer():
    """The counter travels with checkpoints (state_dict(keep_nonpersistent=True)) but not in the
    PyTorch-style state dict, where torch.nn.Dropout has no such key."""
    model = nc.layers.Sequential(nc.layers.Linear(4, 4), nc.layers.Dropout(0.5))
    x = np.ones((2, 4), np.float32)
    model(x)
    model(x)
    assert "1.calls" not in model.state_dict()
    full = model.state_dict(keep_nonpersistent=True)
    assert int(full["1.calls"]) == 2
    other = nc.layers.Sequential(nc.layers.Linear(4, 4), nc.layers.Dropout(0.5))
    other.load_state_dict(model.state_dict())  # without the counter: still loads
    assert int(other[1].calls) == 0
    other.load_state_dict(full)
    assert int(other[1].calls) == 2
