"""Freezing (transfer learning): frozen parameters get no gradient computed, no update and no
weight decay; the head can be replaced; freezing works after the optimizer is built."""

import numpy as np
import pytest

import numbacnn as nc
import numbacnn.kernels.cpu as ops
from numbacnn import layers as L


def _backward_both_ways(make_layer, shape, rng):
    """(unfrozen layer, frozen layer, dx of each) for the same weights, input and output gradient."""
    free, frozen = make_layer(), make_layer()
    frozen.load_state_dict(free.state_dict())
    frozen.weight.requires_grad = False
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(free.forward(x).shape).astype(np.float32)
    frozen.forward(x)
    return free, frozen, free.backward(dy).copy(), frozen.backward(dy).copy()


@pytest.mark.parametrize(
    "make_layer,shape",
    [
        (lambda: L.Conv2d(4, 8, 3, padding=1), (2, 4, 6, 6)),  # one-pool path
        (lambda: L.Conv2d(4, 6, 3, groups=2, dilation=2), (2, 4, 7, 7)),  # direct_channels, grouped and dilated
        (lambda: L.Linear(5, 3), (4, 5)),
        (lambda: L.BatchNorm2d(3), (4, 3, 2, 2)),
    ],
    ids=["conv", "conv_grouped", "linear", "batchnorm"],
)
def test_a_frozen_weight_gets_no_gradient_and_the_rest_is_unchanged(make_layer, shape, rng):
    free, frozen, dx_free, dx_frozen = _backward_both_ways(make_layer, shape, rng)
    assert not frozen.weight.grad.any() and free.weight.grad.any()
    np.testing.assert_array_equal(frozen.bias.grad, free.bias.grad)
    np.testing.assert_allclose(dx_frozen, dx_free, rtol=1e-6, atol=1e-6)


def test_a_first_conv_with_everything_frozen_computes_nothing_but_its_bias(rng):
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 1, 5, 5)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    db = np.zeros(4, np.float32)
    ops.conv2d_backward(None, None, db, dy, x, w, (1, 1), (0, 0), (1, 1), 1)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-5)


def test_module_freeze_unfreeze_and_requires_grad_():
    model = nc.models.lenet5()
    model[0].freeze()
    assert [p.requires_grad for p in model[0].parameters()] == [False, False]
    assert all(p.requires_grad for p in model[3].parameters())
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    model.unfreeze()
    assert all(p.requires_grad for p in model.parameters())
    assert "requires_grad=False" in repr(model[0].weight.requires_grad_(False))


def _train_steps(model, opt, rng, steps=3):
    crit = nc.losses.CrossEntropyLoss()
    for _ in range(steps):
        x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, 8)
        opt.zero_grad()
        crit.forward(model.forward(x), y)
        model.backward(crit.backward())
        opt.step()


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_frozen_parameters_are_not_updated_nor_decayed(optimizer, when):
    nc.manual_seed(0)
    model = nc.models.lenet5()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    make = {
        "sgd": lambda ps: nc.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
        "adamw": lambda ps: nc.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    }[optimizer]
    if when == "before":
        model[0].freeze()
        model[3].freeze()
    opt = make(model.parameters())
    if when == "after":  # frozen once the optimizer already owns the parameters
        model[0].freeze()
        model[3].freeze()
    _train_steps(model, opt, np.random.default_rng(1))
    after = model.state_dict()
    for key in before:
        changed = not np.array_equal(after[key], before[key])
        assert changed == (key.split(".")[0] not in ("0", "3")), key
    # The trainable part moved exactly as an optimizer over the trainable parameters alone moves it.
    nc.manual_seed(0)
    alone = nc.models.lenet5()
    alone[0].freeze()
    alone[3].freeze()
    _train_steps(alone, make([p for p in alone.parameters() if p.requires_grad]), np.random.default_rng(1))
    for key, value in alone.state_dict().items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_unfreezing_later_resumes_updates():
    model = nc.models.lenet5()
    model[0].freeze()
    opt = nc.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(2)
    _train_steps(model, opt, rng, 1)
    frozen_value = model[0].weight.data.copy()
    model[0].unfreeze()
    _train_steps(model, opt, rng, 1)
    assert not np.array_equal(model[0].weight.data, frozen_value)


@pytest.mark.parametrize("name,head", [("lenet5", "11"), ("resnet8", "fc")])
def test_reset_classifier_keeps_pytorch_keys(name, head, rng):
    model = nc.models.create(name, 1, 10, 28)
    keys = list(model.state_dict())
    trunk = {k: v for k, v in model.state_dict().items() if not k.startswith(head + ".")}
    model.reset_classifier(5)
    assert list(model.state_dict()) == keys
    assert model.state_dict()[f"{head}.weight"].shape[0] == 5
    for k, v in trunk.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)
    model.eval()
    assert model.forward(rng.standard_normal((2, 1, 28, 28)).astype(np.float32)).shape == (2, 5)
    with pytest.raises(ValueError, match="no Linear layer"):
        L.Sequential(L.ReLU()).reset_classifier(3)
