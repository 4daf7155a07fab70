"""Cross-entropy (with label smoothing) and MSE: reference, gradients, stability."""

import numpy as np
import pytest

import numbacnn as nc

from helpers import cross_entropy_ref


def numeric_loss_grad(crit, logits, targets, eps=1e-6):
    g = np.zeros_like(logits)
    for idx in np.ndindex(*logits.shape):
        old = logits[idx]
        logits[idx] = old + eps
        plus = crit.forward(logits, targets)
        logits[idx] = old - eps
        minus = crit.forward(logits, targets)
        logits[idx] = old
        g[idx] = (plus - minus) / (2 * eps)
    return g


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("n,k", [(1, 2), (5, 10), (3, 7)])
def test_cross_entropy_reference_and_gradient(smoothing, n, k, rng):
    logits = rng.standard_normal((n, k)) * 3
    targets = rng.integers(0, k, n)
    crit = nc.losses.CrossEntropyLoss(label_smoothing=smoothing)
    assert crit.forward(logits, targets) == pytest.approx(cross_entropy_ref(logits, targets, smoothing), rel=1e-12)
    analytic = crit.backward().copy()
    np.testing.assert_allclose(analytic, numeric_loss_grad(crit, logits, targets), rtol=1e-6, atol=1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1e4, 1e4, 5.0]], dtype=np.float32)
    crit = nc.losses.CrossEntropyLoss()
    loss = crit.forward(logits, np.array([1, 1]))
    assert np.isfinite(loss) and loss == pytest.approx(1000.0, rel=1e-6)
    assert np.all(np.isfinite(crit.backward()))


def test_cross_entropy_float32_agrees_with_float64(rng):
    logits = rng.standard_normal((16, 10)) * 4
    t = rng.integers(0, 10, 16)
    c32, c64 = nc.losses.CrossEntropyLoss(0.1), nc.losses.CrossEntropyLoss(0.1)
    assert c32.forward(logits.astype(np.float32), t) == pytest.approx(c64.forward(logits, t), rel=1e-5)
    np.testing.assert_allclose(c32.backward(), c64.backward(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "bad,err,match",
    [
        (np.array([0, 10]), ValueError, r"targets must lie in \[0, 9\]"),
        (np.array([0.0, 1.0]), TypeError, "integer class indices"),
        (np.array([0, 1, 2]), ValueError, r"expected targets of shape \(2,\)"),
    ],
)
def test_cross_entropy_bad_targets(bad, err, match):
    with pytest.raises(err, match=match):
        nc.losses.CrossEntropyLoss().forward(np.zeros((2, 10), np.float32), bad)


def test_mse_reference_and_gradient(rng):
    pred, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    crit = nc.losses.MSELoss()
    assert crit.forward(pred, target) == pytest.approx(np.mean((pred - target) ** 2), rel=1e-12)
    np.testing.assert_allclose(crit.backward(), 2 * (pred - target) / pred.size, rtol=1e-12)
