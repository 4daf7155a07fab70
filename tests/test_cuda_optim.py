"""kernels/cuda/optim.py against the CPU: SGD (momentum, Nesterov, none) and Adam/AdamW steps, and
the weight average's update (ema_update)."""

import numpy as np
import pytest

import numbacnn.kernels.cpu as cpu_kernels
import numbacnn.kernels.cuda as cuda_kernels

from cuda_parity import host, needs_cuda

pytestmark = needs_cuda


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("sgd_step", dict(lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True)),
        ("sgd_step", dict(lr=0.1, momentum=0.0, weight_decay=0.0, nesterov=False)),
        ("adam_step", dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=1e-2, decoupled=False, step=3)),
        ("adam_step", dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=1e-2, decoupled=True, step=1)),
    ],
)
def test_optimizer_step_parity(name, kwargs, rng, cuda):
    n_state = 1 if name == "sgd_step" else 2
    arrays = [rng.standard_normal(37).astype(np.float32) for _ in range(2 + n_state)]
    arrays[3 if n_state == 2 else 2][:] = np.abs(arrays[-1])  # second moments are >= 0
    cpu_arrays = [a.copy() for a in arrays]
    gpu_arrays = [cuda.asarray(a) for a in arrays]
    getattr(cpu_kernels, name)(*cpu_arrays, **kwargs)
    getattr(cuda_kernels, name)(*gpu_arrays, **kwargs)
    for a, b in zip(cpu_arrays, gpu_arrays):
        np.testing.assert_allclose(host(b), a, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ema_update_parity(dtype, rng, cuda):
    average, value = (rng.standard_normal(37).astype(dtype) for _ in range(2))
    expected = average.copy()
    cpu_kernels.ema_update(expected, value, 0.99)
    on_gpu = cuda.asarray(average)
    cuda_kernels.ema_update(on_gpu, cuda.asarray(value), 0.99)
    assert host(on_gpu).dtype == dtype
    np.testing.assert_allclose(host(on_gpu), expected, rtol=1e-6, atol=1e-7)
