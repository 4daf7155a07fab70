"""Containers: gradient checks of BasicBlock (both shortcut kinds) and a small Sequential."""

import numpy as np
import pytest

import numbacnn as nc

from helpers import gradient_check

L = nc.layers


def randomise_bn(model, rng):
    for _, m in model.named_modules():
        if isinstance(m, L.BatchNorm2d):
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = rng.uniform(0.2, 0.6, m.num_features)


@pytest.mark.parametrize("cin,cout,stride", [(3, 3, 1), (2, 4, 2), (3, 5, 1)])
def test_basic_block_gradients(cin, cout, stride, rng):
    block = L.BasicBlock(cin, cout, stride).to(np.float64)
    assert (block.shortcut is None) == (cin == cout and stride == 1)
    randomise_bn(block, rng)
    x = rng.standard_normal((2, cin, 5, 5))
    # Random inputs may put a pre-activation within eps of a ReLU kink; a tolerance of 1e-4 still
    # catches any wrong formula (those are off by O(1)).
    assert gradient_check(block, x, eps=1e-6, rtol=1e-4, atol=1e-6) > 0


def test_basic_block_state_dict_keys():
    keys = set(L.BasicBlock(2, 4, 2).state_dict())
    assert {
        "conv1.weight",
        "bn1.running_mean",
        "conv2.weight",
        "bn2.num_batches_tracked",
        "shortcut.0.weight",
        "shortcut.1.running_var",
    } <= keys


def test_sequential_gradients(rng):
    model = L.Sequential(
        L.Conv2d(2, 3, 3, padding=1),
        L.BatchNorm2d(3),
        L.Tanh(),
        L.AvgPool2d(2),
        L.Conv2d(3, 4, 2),
        L.ELU(),
        L.Flatten(),
        L.Linear(4 * 2 * 2, 5),
        L.Sigmoid(),
        L.Linear(5, 3),
    )
    x = rng.standard_normal((3, 2, 6, 6))
    assert gradient_check(model, x, rtol=1e-5, atol=1e-8) > 0


def test_sequential_with_relu_and_maxpool_gradients(rng):
    model = L.Sequential(L.Conv2d(1, 2, 3, padding=1), L.ReLU(), L.MaxPool2d(2), L.Flatten(), L.Linear(8, 2))
    x = rng.standard_normal((2, 1, 4, 4))
    assert gradient_check(model, x, eps=1e-6, rtol=1e-4, atol=1e-6) > 0
