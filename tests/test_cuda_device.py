"""The CUDA device and its guards: cached reshaped views (kernels/cuda/launch.py), host arrays
refused by every kernel family, uploads; `numbacnn bench kernels` side by side."""

import numpy as np
import pytest

import numbacnn as nc
import numbacnn.kernels.cuda as cuda_kernels
from numbacnn import layers as L
from numbacnn.runtime.device import DeviceError

from cuda_parity import SIMULATOR, host, needs_cuda

pytestmark = needs_cuda


def test_reshaped_views_are_made_once_and_go_with_their_array(cuda):
    """Kernels reshape their arguments at every call; the views are cached per array (a fresh one
    costs a launch ~40 us on a GPU), and the cache lets go of an array that nobody holds."""
    import gc

    from numbacnn.kernels.cuda import launch

    a = cuda.zeros((2, 3, 4))
    v = launch.view(a, 6, 4)
    assert launch.view(a, 6, 4) is v and launch.flat(a) is launch.flat(a)
    assert tuple(v.shape) == (6, 4) and tuple(launch.flat(a).shape) == (24,)
    b = cuda.zeros((2, 3, 4))
    assert launch.view(b, 6, 4) is not v  # same shape, another array: another view
    key = id(a)
    del a, v
    gc.collect()
    assert key not in launch._views


def test_host_arrays_are_refused_by_every_kernel_family(rng, cuda):
    x_host = rng.standard_normal((2, 3)).astype(np.float32)
    out = cuda.empty((2, 3))
    with pytest.raises(DeviceError, match="'x' is a host \\(numpy\\) array"):
        cuda_kernels.relu_forward(out, x_host)
    w = cuda.asarray(rng.standard_normal((4, 3)).astype(np.float32))
    with pytest.raises(DeviceError, match="'out' is a host"):
        cuda_kernels.linear_forward(np.empty((2, 4), np.float32), cuda.asarray(x_host), w, None)
    layer = L.Conv2d(1, 1, 1).to("cuda")
    with pytest.raises(DeviceError, match="input is on cpu but the layer is on cuda"):
        layer.forward(np.zeros((1, 1, 2, 2), np.float32))


def test_device_arrays_and_uploads(cuda):
    assert cuda.name == "cuda" and nc.get_device("gpu") == cuda
    z = cuda.zeros((3, 2))
    assert cuda.owns(z) and not cuda.owns(np.zeros(2))
    np.testing.assert_array_equal(cuda.to_host(z), np.zeros((3, 2), np.float32))
    buf = cuda.empty((2, 2))
    data = np.arange(4, dtype=np.float32).reshape(2, 2)
    assert cuda.asarray(data, out=buf) is buf
    np.testing.assert_array_equal(host(buf), data)
    with pytest.raises(ValueError, match="out has shape"):
        cuda.asarray(np.zeros(3, np.float32), out=buf)
    assert nc.get_device("auto") == (nc.get_device("cpu") if SIMULATOR else cuda)


def test_bench_kernels_side_by_side(monkeypatch, cuda):
    """`numbacnn bench kernels` on CPU and CUDA: checked against the CPU, speed-up column filled."""
    from numbacnn.tools import bench

    monkeypatch.setattr(
        bench,
        "kernel_grid",
        lambda size="default": [
            ("relu", lambda: L.ReLU(), (2, 3, 4, 4)),
            ("conv2d", lambda: L.Conv2d(2, 2, 3, padding=1), (1, 2, 4, 4)),
        ],
    )
    rows = bench.kernel_rows(("cpu", "cuda"), repeats=1)
    assert len(rows) == 8 and all(r["check"] == "ok" for r in rows)
    assert all((r["speedup_vs_cpu"] is None) == (r["device"] == "cpu") for r in rows)
