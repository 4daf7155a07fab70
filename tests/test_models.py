"""Model sanity: initial loss near ln(10), overfitting 64 fixed samples, determinism, summaries."""

import math

import numpy as np
import pytest

import numbacnn as nc


def fixed_batch(shape, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(shape[0]) % classes
    # Class-dependent images plus noise: learnable, but not trivially separable by one pixel.
    protos = rng.standard_normal((classes,) + shape[1:]).astype(np.float32)
    x = protos[y] * 0.5 + rng.standard_normal(shape).astype(np.float32)
    return np.ascontiguousarray(x), y


def train_steps(model, opt, x, y, steps):
    crit = nc.losses.CrossEntropyLoss()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        losses.append(crit.forward(model(x), y))
        model.backward(crit.backward())
        opt.step()
    return losses


def accuracy(model, x, y):
    model.eval()
    acc = float((model(x).argmax(1) == y).mean())
    model.train()
    return acc


@pytest.mark.parametrize(
    "build,shape",
    [
        (lambda: nc.models.lenet5(), (32, 1, 28, 28)),
        (lambda: nc.models.resnet(8, in_channels=1), (32, 1, 16, 16)),
        (lambda: nc.models.resnet(20, in_channels=3), (8, 3, 32, 32)),
    ],
)
def test_initial_loss_is_near_ln10(build, shape):
    x, y = fixed_batch(shape)
    model = build()  # training mode: the loss of the first optimizer step
    loss = nc.losses.CrossEntropyLoss().forward(model(x), y)
    assert abs(loss - math.log(10)) < 0.35, loss


def test_lenet5_overfits_64_samples():
    x, y = fixed_batch((64, 1, 28, 28))
    model = nc.models.lenet5()
    opt = nc.optim.Adam(model.parameters(), lr=2e-3)
    losses = train_steps(model, opt, x, y, 150)
    assert losses[-1] < 0.2 * losses[0]
    assert accuracy(model, x, y) > 0.95


def test_resnet8_overfits_64_samples():
    x, y = fixed_batch((64, 1, 16, 16))
    model = nc.models.resnet(8, in_channels=1)
    opt = nc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = train_steps(model, opt, x, y, 120)
    assert losses[-1] < 0.2 * losses[0]
    assert accuracy(model, x, y) > 0.95


def test_same_seed_gives_bitwise_identical_losses():
    def run():
        nc.manual_seed(42)
        model = nc.layers.Sequential(*nc.models.lenet5(input_size=16)._modules.values(), nc.layers.Dropout(0.1))
        x, y = fixed_batch((16, 1, 16, 16), seed=5)
        opt = nc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return train_steps(model, opt, x, y, 20)

    first, second = run(), run()
    assert first == second
    assert len(set(first)) > 1


def test_resnet_depth_validation_and_structure():
    with pytest.raises(ValueError, match="6n\\+2"):
        nc.models.resnet(10)
    model = nc.models.resnet(20)
    convs = [n for n, m in model.named_modules() if isinstance(m, nc.layers.Conv2d)]
    assert len(convs) == 1 + 18 + 2  # stem, 9 blocks x 2, two projection shortcuts
    assert model.num_parameters() == 272474
    assert model.output_shape((2, 3, 32, 32)) == (2, 10)


def test_lenet5_summary():
    s = nc.models.lenet5().summary((1, 28, 28))
    assert s.total_params == 61706
    assert s.rows[0][2] == (1, 6, 28, 28)
    assert s.rows[-1][2] == (1, 10)
    # conv1: 6*28*28 outputs x 25 multiply-adds x 2, plus bias adds
    assert s.rows[0][4] == 2 * 6 * 28 * 28 * 25 + 6 * 28 * 28
    assert "total params: 61,706" in str(s)


def test_unknown_model_is_refused_not_given_resnet_defaults():
    """A name that merely does not start with "lenet" used to get ResNet defaults silently."""
    from numbacnn.training.config import resolve_config

    with pytest.raises(ValueError, match="unknown model 'vgg99'.*lenet5"):
        resolve_config("vgg99")
    assert resolve_config("ResNet-20")["augment"] is True
    assert nc.models.family("lenet5") == "lenet"


def test_initialisers_fill_chunk_by_chunk_with_the_same_values(monkeypatch):
    """Chunked drawing (no float64 copy of a large layer) gives the values of one big draw."""
    from numbacnn import init

    monkeypatch.setattr(init, "CHUNK", 7)
    for make, reference in (
        (lambda r: init.uniform((5, 6), 0.3, rng=r), lambda r: r.uniform(-0.3, 0.3, size=(5, 6))),
        (lambda r: init.kaiming_normal((4, 3, 2, 2), rng=r), lambda r: r.standard_normal((4, 3, 2, 2)) * (2**0.5 / 4)),
    ):
        got = make(np.random.default_rng(3))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, reference(np.random.default_rng(3)).astype(np.float32))


def test_manual_seed_refuses_negative_and_non_integer_seeds():
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            nc.manual_seed(bad)


def test_models_skip_the_input_gradient_unless_asked(rng):
    """As PyTorch (no requires_grad on the images): training never pays for dL/dx of the input."""
    from helpers import gradient_check

    for model in (nc.models.lenet5(), nc.models.resnet(8, 1, 10)):
        x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
        y = model.forward(x)
        assert model.backward(np.ones_like(y)) is None
        model.requires_input_grad()
        model.forward(x)
        assert model.backward(np.ones_like(y)).shape == x.shape
    lenet = nc.models.lenet5().requires_input_grad()
    assert gradient_check(lenet, rng.standard_normal((1, 1, 28, 28)), max_checks=12) >= 12
