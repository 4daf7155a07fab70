"""What the CUDA parity tests (test_cuda_<module>.py) share: the CPU-against-CUDA check of a layer,
host copies, the skip markers, and fixed batches and optimizer runs for whole models.

Without a GPU these run in numba's simulator (conftest switches it on), which executes each GPU
thread as Python: shapes are tiny. The ``gpu`` tests repeat checks at real sizes on a real GPU.
"""

import numpy as np
import pytest
from numba.core import config

import numbacnn as nc

SIMULATOR = bool(config.ENABLE_CUDASIM)
needs_cuda = pytest.mark.skipif(not nc.cuda_available(), reason="no CUDA GPU and no simulator")
real_gpu = pytest.mark.skipif(SIMULATOR, reason="needs a real GPU (the simulator is too slow)")


def host(a):
    return a if isinstance(a, np.ndarray) else a.copy_to_host()


def assert_layer_parity(layer, shape, rng, dtype=np.float32, rtol=1e-4, atol=1e-5):
    """Forward, input gradient and parameter gradients on the CPU, then again after .to('cuda')."""
    layer.to(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    y_cpu = layer.forward(x).copy()
    dy = rng.standard_normal(y_cpu.shape).astype(dtype)
    dx_cpu = layer.backward(dy).copy()
    grads_cpu = [p.grad.copy() for p in layer.parameters()]
    buffers_cpu = {k: np.array(v, copy=True) for k, v in layer.state_dict().items()}
    if hasattr(layer, "calls"):
        layer.calls = 0  # dropout: draw the same mask again
    cuda = nc.get_device("cuda")
    layer.to("cuda")
    if hasattr(layer, "running_mean") and layer.training:  # replay the running-stats update
        layer.running_mean = cuda.asarray(np.zeros(layer.num_features, dtype))
        layer.running_var = cuda.asarray(np.ones(layer.num_features, dtype))
        layer._set_buffer("running_mean", layer.running_mean)
        layer._set_buffer("running_var", layer.running_var)
    y = layer.forward(cuda.asarray(x))
    assert not isinstance(y, np.ndarray)
    np.testing.assert_allclose(host(y), y_cpu, rtol=rtol, atol=atol)
    np.testing.assert_allclose(host(layer.backward(cuda.asarray(dy))), dx_cpu, rtol=rtol, atol=atol)
    for p, g in zip(layer.parameters(), grads_cpu):
        np.testing.assert_allclose(host(p.grad), g, rtol=rtol, atol=atol)
    for k, v in layer.state_dict().items():
        if k.startswith("running"):
            np.testing.assert_allclose(v, buffers_cpu[k], rtol=rtol, atol=atol)


def fixed_batch(shape, classes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), np.arange(shape[0]) % classes


def run_steps(model, make_opt, x, y, steps, device):
    model.to(device)
    opt = make_opt(model.parameters())
    crit = nc.losses.CrossEntropyLoss()
    dev = nc.get_device(device)
    x_dev = dev.asarray(x)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        losses.append(crit.forward(model(x_dev), y))
        model.backward(crit.backward())
        opt.step()
    return losses, model.state_dict()
