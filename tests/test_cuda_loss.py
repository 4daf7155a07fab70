"""kernels/cuda/loss.py against the CPU: cross-entropy with and without label smoothing, MSE."""

import numpy as np
import pytest

import numbacnn as nc

from cuda_parity import host, needs_cuda

pytestmark = needs_cuda


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_parity(smoothing, rng, cuda):
    logits = rng.standard_normal((5, 4)).astype(np.float32) * 3
    targets = rng.integers(0, 4, 5)
    crit = nc.losses.CrossEntropyLoss(label_smoothing=smoothing)
    loss_cpu = crit.forward(logits, targets)
    d_cpu = crit.backward().copy()
    crit_gpu = nc.losses.CrossEntropyLoss(label_smoothing=smoothing)
    loss = crit_gpu.forward(cuda.asarray(logits), targets)
    assert loss == pytest.approx(loss_cpu, rel=1e-6)
    np.testing.assert_allclose(host(crit_gpu.backward()), d_cpu, rtol=1e-5, atol=1e-7)


def test_mse_parity(rng, cuda):
    pred, target = rng.standard_normal((2, 3, 5)).astype(np.float32), rng.standard_normal((2, 3, 5)).astype(np.float32)
    crit, crit_gpu = nc.losses.MSELoss(), nc.losses.MSELoss()
    assert crit_gpu.forward(cuda.asarray(pred), cuda.asarray(target)) == pytest.approx(
        crit.forward(pred, target), rel=1e-6
    )
    np.testing.assert_allclose(host(crit_gpu.backward()), crit.backward(), rtol=1e-6)
