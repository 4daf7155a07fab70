"""Adversarial examples (FGSM, PGD, adversarial training) and inspection (feature maps, saliency,
filters): checked against finite-difference input gradients, bounds, and a trained model."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn import layers as L
from numbacnn.adversarial import Adversary, fgsm, input_gradient, pgd, pixel_units


def _small_model(seed=0):
    nc.manual_seed(seed)
    model = L.Sequential(
        L.Conv2d(2, 3, 3, padding=1), L.Tanh(), L.AvgPool2d(2), L.Flatten(), L.Linear(3 * 2 * 2, 4)
    ).double()
    return model.requires_input_grad(False)  # as the models are: the attack must switch it on


def _numeric_input_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up) - f(down)) / (2 * eps)
    return grad


def _mean_loss(model, y):
    crit = nc.losses.CrossEntropyLoss()
    return lambda x: crit.forward(model.eval().forward(x), y)


def test_input_gradient_matches_finite_differences(rng):
    model = _small_model()
    x, y = rng.standard_normal((3, 2, 4, 4)), np.array([0, 3, 1])
    np.testing.assert_allclose(
        input_gradient(model, x, y), _numeric_input_gradient(_mean_loss(model, y), x), rtol=1e-5, atol=1e-9
    )


def test_fgsm_is_eps_times_the_sign_of_the_finite_difference_gradient(rng):
    model = _small_model()
    x, y = rng.standard_normal((3, 2, 4, 4)), np.array([2, 0, 1])
    numeric = _numeric_input_gradient(_mean_loss(model, y), x)
    np.testing.assert_allclose(fgsm(model, x, y, 0.05) - x, 0.05 * np.sign(numeric), atol=1e-12)


def test_attacks_leave_the_model_as_they_found_it(rng):
    model = _small_model()
    model.train()
    for p in model.parameters():
        p.grad[...] = 1.5  # accumulated gradients must survive
    model[0].bias.requires_grad = False
    pgd(model, rng.standard_normal((2, 2, 4, 4)), [0, 1], 0.1, steps=3)
    assert model.training and model.first_layer().input_grad is False
    assert [p.requires_grad for p in model.parameters()] == [True, False, True, True]
    assert all((p.grad == 1.5).all() for p in model.parameters())


def test_clipping_and_projection_hold(rng):
    model = _small_model()
    x, y = rng.uniform(-0.8, 0.9, (4, 2, 4, 4)), np.array([0, 1, 2, 3])  # valid images: inside the bounds
    eps, low, high = np.array([0.3, 0.1]), np.array([-1.0, -0.8]), np.array([1.0, 0.9])
    for adv in (fgsm(model, x, y, eps, (low, high)), pgd(model, x, y, eps, 7, clip=(low, high), random_start=True)):
        shift = adv - x
        assert (np.abs(shift) <= eps.reshape(1, 2, 1, 1) + 1e-12).all()
        assert (adv >= low.reshape(1, 2, 1, 1)).all() and (adv <= high.reshape(1, 2, 1, 1)).all()


def test_pixel_units_keep_pixels_in_range():
    eps, (low, high) = pixel_units(0.1, (0.2860,), (0.3530,))
    np.testing.assert_allclose(eps, [0.1 / 0.353])
    np.testing.assert_allclose(low * 0.353 + 0.286, [0.0], atol=1e-12)
    np.testing.assert_allclose(high * 0.353 + 0.286, [1.0])


def _trained_linear_classifier(rng):
    """Two Gaussian blobs told apart by a linear model trained to ~100% (then an attack of the
    right size must break it)."""
    centers = np.array([[-1.0] * 8, [1.0] * 8]).reshape(2, 2, 2, 2)
    y = rng.integers(0, 2, 256)
    x = centers[y] + 0.3 * rng.standard_normal((256, 2, 2, 2))
    nc.manual_seed(0)
    model = L.Sequential(L.Flatten(), L.Linear(8, 2)).double()
    opt = nc.optim.SGD(model.parameters(), lr=0.5)
    crit = nc.losses.CrossEntropyLoss()
    for _ in range(50):
        opt.zero_grad()
        crit.forward(model.forward(x), y)
        model.backward(crit.backward())
        opt.step()
    return model.eval(), x, y


def test_the_attacks_lower_the_accuracy_of_a_trained_model(rng):
    model, x, y = _trained_linear_classifier(rng)

    def accuracy(batch):
        return float((model.forward(batch).argmax(1) == y).mean())

    clean = accuracy(x)
    assert clean > 0.95
    # eps 1.5 carries each blob past the boundary between the centres (+-1 per value).
    assert accuracy(fgsm(model, x, y, 1.5)) < 0.2
    assert accuracy(pgd(model, x, y, 1.5, steps=5)) <= accuracy(fgsm(model, x, y, 1.5)) + 1e-9
    assert accuracy(fgsm(model, x, y, 0.01)) > 0.9  # a tiny eps barely moves it


def test_adversary_replaces_the_first_share_of_the_batch(rng):
    model = _small_model()
    x, y = rng.standard_normal((5, 2, 4, 4)), np.array([0, 1, 2, 3, 0])
    original = x.copy()
    Adversary(0.2, ratio=0.5)(model, x, y)
    np.testing.assert_allclose(x[:3], fgsm(model, original[:3], y[:3], 0.2))
    np.testing.assert_array_equal(x[3:], original[3:])
    with pytest.raises(ValueError, match="ratio"):
        Adversary(0.1, ratio=0)


# --------------------------------------------------------------------------- inspection
def test_feature_maps_are_the_layer_outputs(rng):
    model = _small_model()
    x = rng.standard_normal((2, 2, 4, 4))
    maps = nc.inspect.feature_maps(model, x, ["0", "1"])
    conv_out = model[0].forward(x).copy()
    np.testing.assert_allclose(maps["0"], conv_out)
    np.testing.assert_allclose(maps["1"], np.tanh(conv_out))
    assert "forward" not in model[0].__dict__  # the wrapper is gone
    assert list(nc.inspect.feature_maps(nc.models.resnet(8, 1, 10), x[:, :1], None))[:2] == [
        "conv1",
        "layer1.0.conv1",
    ]
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        nc.inspect.feature_maps(model, x, ["nope"])


def test_saliency_is_the_finite_difference_gradient_of_the_target_score(rng):
    model = _small_model()
    x = rng.standard_normal((2, 2, 4, 4))
    grad, target = nc.inspect.score_gradient(model, x, target=[1, 3])
    for n, k in enumerate(target):
        numeric = _numeric_input_gradient(lambda v: float(model.eval().forward(v)[n, k]), x)
        np.testing.assert_allclose(grad[n], numeric[n], rtol=1e-5, atol=1e-9)
    sal, predicted = nc.inspect.saliency(model, x)
    assert sal.shape == (2, 4, 4) and (sal >= 0).all()
    np.testing.assert_array_equal(predicted, model.forward(x).argmax(1))


def test_filters_are_the_conv_weights():
    model = nc.models.lenet5()
    np.testing.assert_array_equal(nc.inspect.filters(model), model[0].weight.data)
    assert nc.inspect.filters(model, "3").shape == (16, 6, 5, 5)
    with pytest.raises(ValueError, match="not a convolution"):
        nc.inspect.filters(model, "1")


def test_cuda_attack_matches_the_cpu(rng):
    if not nc.cuda_available():
        pytest.skip("no CUDA GPU and no simulator")
    nc.manual_seed(0)
    model = L.Sequential(L.Conv2d(1, 2, 3, padding=1), L.ReLU(), L.Flatten(), L.Linear(2 * 3 * 3, 3))
    x = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    y = np.array([0, 2])
    want = fgsm(model, x, y, 0.1)
    want_sal, _ = nc.inspect.saliency(model, x)
    model.to("cuda")
    np.testing.assert_allclose(fgsm(model, x, y, 0.1), want, atol=1e-6)
    np.testing.assert_allclose(nc.inspect.saliency(model, x)[0], want_sal, rtol=1e-4, atol=1e-6)
