"""state_dict / load_state_dict: PyTorch key names, round trips, clear errors."""

import numpy as np
import pytest

import numbacnn as nc


def test_lenet5_keys_follow_pytorch_sequential_naming():
    keys = list(nc.models.lenet5().state_dict())
    assert keys == [
        "0.weight",
        "0.bias",
        "3.weight",
        "3.bias",
        "7.weight",
        "7.bias",
        "9.weight",
        "9.bias",
        "11.weight",
        "11.bias",
    ]


def test_resnet_keys():
    keys = set(nc.models.resnet(8).state_dict())
    assert {
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer2.0.shortcut.0.weight",
        "layer3.0.bn2.num_batches_tracked",
        "fc.weight",
        "fc.bias",
    } <= keys


def test_round_trip_reproduces_outputs(rng):
    nc.manual_seed(1)
    a = nc.models.resnet(8, in_channels=1)
    nc.manual_seed(2)
    b = nc.models.resnet(8, in_channels=1)
    x = rng.standard_normal((4, 1, 12, 12)).astype(np.float32)
    a(x)  # updates running statistics, which must travel too
    a.eval()
    b.load_state_dict(a.state_dict())
    b.eval()
    np.testing.assert_array_equal(a(x), b(x))


def test_load_keeps_optimizer_flat_storage(rng):
    model = nc.layers.Linear(3, 2)
    opt = nc.optim.SGD(model.parameters(), lr=0.1)
    state = {k: np.ones_like(v) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert opt.storage.is_intact()
    np.testing.assert_array_equal(opt.storage.data, 1)


def test_missing_unexpected_and_misshaped_keys_are_named():
    model = nc.models.lenet5()
    state = model.state_dict()
    missing = dict(state)
    del missing["3.bias"]
    with pytest.raises(KeyError, match="missing keys: 3.bias"):
        model.load_state_dict(missing)
    extra = dict(state, **{"12.weight": np.zeros(3)})
    with pytest.raises(KeyError, match="unexpected keys: 12.weight"):
        model.load_state_dict(extra)
    bad = dict(state, **{"7.weight": np.zeros((120, 401))})
    with pytest.raises(ValueError, match=r"key '7.weight' has shape \(120, 401\), the model expects \(120, 400\)"):
        model.load_state_dict(bad)


def test_dtype_conversion_keeps_values():
    model = nc.models.lenet5()
    before = model.state_dict()
    model.double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.astype(np.float32), before[k])
