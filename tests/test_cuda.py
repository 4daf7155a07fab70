"""CUDA backend: every kernel agrees with its CPU twin (forward and all gradients), models agree
over optimizer steps, host arrays are refused.

Without a GPU these run in numba's simulator (conftest switches it on), which executes each GPU
thread as Python: shapes here are tiny. The ``gpu`` tests repeat the checks at real sizes and run
only on a real GPU.
"""

import numpy as np
import pytest
from numba.core import config

import numbacnn as nc
import numbacnn.kernels.cpu as cpu_kernels
import numbacnn.kernels.cuda as cuda_kernels
from numbacnn import layers as L
from numbacnn.runtime.device import DeviceError

from helpers import gather_case, gather_ref

SIMULATOR = bool(config.ENABLE_CUDASIM)
pytestmark = pytest.mark.skipif(not nc.cuda_available(), reason="no CUDA GPU and no simulator")
real_gpu = pytest.mark.skipif(SIMULATOR, reason="needs a real GPU (the simulator is too slow)")


@pytest.fixture(scope="module")
def cuda():
    return nc.get_device("cuda")


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


CONV_CASES = [
    dict(cin=3, cout=4, k=3, stride=1, padding=1, dilation=1, groups=1, bias=True, hw=(5, 6)),
    dict(cin=2, cout=3, k=3, stride=2, padding=0, dilation=1, groups=1, bias=False, hw=(7, 5)),
    dict(cin=4, cout=4, k=(3, 2), stride=(1, 2), padding=(2, 1), dilation=2, groups=2, bias=True, hw=(6, 7)),
    dict(cin=2, cout=2, k=1, stride=1, padding=0, dilation=1, groups=1, bias=True, hw=(3, 3)),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_conv2d_parity(case, rng, cuda):
    c = dict(case)
    h, w = c.pop("hw")
    layer = L.Conv2d(c.pop("cin"), c.pop("cout"), c.pop("k"), **c)
    assert_layer_parity(layer, (2, layer.in_channels, h, w), rng)


def test_conv2d_parity_batch1_and_float64(rng, cuda):
    """Batch 1 takes the direct weight-gradient path; float64 compiles a second GEMM."""
    assert_layer_parity(L.Conv2d(2, 3, 3, padding=1), (1, 2, 4, 4), rng)
    assert_layer_parity(L.Conv2d(2, 3, 3, stride=2, padding=1), (2, 2, 5, 5), rng, np.float64, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "layer,shape",
    [
        (lambda: L.MaxPool2d(2), (2, 3, 4, 6)),
        (lambda: L.MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 5)),  # overlapping windows
        (lambda: L.AvgPool2d(2), (2, 2, 4, 4)),
        (lambda: L.AvgPool2d(3, stride=2, padding=1), (2, 2, 5, 6)),
        (lambda: L.AdaptiveAvgPool2d(1), (3, 2, 3, 4)),
        (lambda: L.Linear(7, 5), (3, 7)),
        (lambda: L.Linear(4, 3, bias=False), (2, 4)),
        (lambda: L.BatchNorm2d(3), (2, 3, 3, 4)),
        (lambda: L.ReLU(), (2, 3, 5)),
        (lambda: L.LeakyReLU(0.1), (2, 3, 5)),
        (lambda: L.ELU(0.7), (2, 3, 5)),
        (lambda: L.Sigmoid(), (2, 3, 5)),
        (lambda: L.Tanh(), (2, 3, 5)),
        (lambda: L.Dropout(0.3), (4, 25)),
        (lambda: L.Flatten(), (2, 3, 2, 2)),
        (lambda: L.Softmax(), (3, 5)),
    ],
    ids=[
        "maxpool2",
        "maxpool3s2p1",
        "avgpool2",
        "avgpool3s2p1",
        "global_avg",
        "linear",
        "linear_nobias",
        "batchnorm",
        "relu",
        "leaky_relu",
        "elu",
        "sigmoid",
        "tanh",
        "dropout",
        "flatten",
        "softmax",
    ],
)
def test_layer_parity(layer, shape, rng, cuda):
    assert_layer_parity(layer(), shape, rng)


def test_batchnorm_eval_parity(rng, cuda):
    bn = L.BatchNorm2d(3)
    bn.load_state_dict(
        {
            "weight": rng.uniform(0.5, 1.5, 3),
            "bias": rng.standard_normal(3),
            "running_mean": rng.standard_normal(3),
            "running_var": rng.uniform(0.5, 2, 3),
            "num_batches_tracked": np.array(5),
        }
    )
    bn.eval()
    assert_layer_parity(bn, (2, 3, 2, 3), rng)


@pytest.mark.parametrize(
    "layer,shape",
    [
        (lambda: L.Conv2d(2, 2, 3, padding=(2, 1), padding_mode="reflect"), (1, 2, 3, 4)),
        (lambda: L.Conv2d(2, 2, 3, padding=1, padding_mode="replicate"), (1, 2, 3, 3)),
        (lambda: L.Conv2d(2, 2, 3, padding=2, padding_mode="circular"), (1, 2, 3, 3)),
        (lambda: L.Conv2d(2, 2, 2, padding="same"), (1, 2, 3, 3)),  # asymmetric zeros
        (lambda: L.PReLU(3), (2, 3, 2, 2)),
        (lambda: L.PReLU(), (2, 3)),
        (lambda: L.Maxout(2), (2, 4, 2, 2)),
        (lambda: L.Dropout2d(0.5), (3, 4, 2, 2)),
        (lambda: L.Concat(L.Conv2d(2, 1, 1), L.MaxPool2d(3, 1, 1)), (1, 2, 3, 3)),
        (lambda: L.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 4, 5)),
        (lambda: L.MaxPool2d(2, ceil_mode=True), (1, 2, 3, 5)),
        (lambda: L.AdaptiveAvgPool2d((2, 3)), (1, 2, 3, 4)),
    ],
    ids=[
        "pad_reflect",
        "pad_replicate",
        "pad_circular",
        "same_even",
        "prelu_c",
        "prelu_1",
        "maxout",
        "dropout2d",
        "concat",
        "avgpool_ceil_nopad",
        "maxpool_ceil",
        "adaptive_avg",
    ],
)
def test_toolbox_layer_parity(layer, shape, rng, cuda):
    assert_layer_parity(layer(), shape, rng)


@pytest.mark.parametrize(
    "layer,shape",
    [(lambda: L.Conv2d(2, 3, 3, padding=1), (2, 2, 3, 3)), (lambda: L.Linear(3, 2), (2, 3))],
    ids=["conv", "linear"],
)
def test_frozen_weight_parity(layer, shape, rng, cuda):
    """dw=None: the CUDA kernels skip the weight gradient as the CPU ones do."""
    frozen = layer()
    frozen.weight.requires_grad = False
    assert_layer_parity(frozen, shape, rng)
    assert not host(frozen.weight.grad).any()


def test_synced_batchnorm_parity(rng, cuda):
    """The synchronised path (batchnorm2d_moments, batchnorm2d_backward_synced), with a world of
    one rank: what each rank of a data-parallel run computes around its all-reduces."""
    from numbacnn.distributed import World

    bn = L.BatchNorm2d(3)
    bn.process_group = World()
    assert_layer_parity(bn, (2, 3, 2, 3), rng)


@pytest.mark.parametrize("stride,cin,cout", [(1, 2, 2), (2, 2, 3)], ids=["identity", "projection"])
def test_basic_block_parity(stride, cin, cout, rng, cuda):
    assert_layer_parity(L.BasicBlock(cin, cout, stride), (2, cin, 4, 4), rng)


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


def test_gather_batch_parity(rng, cuda):
    images, labels, indices, scale, shift, offsets, flips, pad = gather_case(rng, 2)
    expected, expected_labels = gather_ref(images, labels, indices, scale, shift, offsets, flips, pad)
    out, out_labels = cuda.empty(expected.shape, np.float32), cuda.empty(len(indices), np.int64)
    arrays = [cuda.asarray(a) for a in (images, labels, indices, scale, shift, offsets, flips)]
    cuda_kernels.gather_batch(out, out_labels, *arrays, pad)
    np.testing.assert_allclose(host(out), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(host(out_labels), expected_labels)


def test_mse_parity(rng, cuda):
    pred, target = rng.standard_normal((2, 3, 5)).astype(np.float32), rng.standard_normal((2, 3, 5)).astype(np.float32)
    crit, crit_gpu = nc.losses.MSELoss(), nc.losses.MSELoss()
    assert crit_gpu.forward(cuda.asarray(pred), cuda.asarray(target)) == pytest.approx(
        crit.forward(pred, target), rel=1e-6
    )
    np.testing.assert_allclose(host(crit_gpu.backward()), crit.backward(), rtol=1e-6)


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


def test_gemm_with_the_gpu_tile(rng, cuda):
    """The simulator normally uses a small tile; check the tile a real GPU uses once, on a small
    problem that still spans several tiles and a partial last K step."""
    from numbacnn.kernels.cuda.gemm import BIAS_COLUMN, GPU_TILE, gemm

    a = rng.standard_normal((1, 1, 70, 20)).astype(np.float32)  # used transposed: (20, 70)^T
    b = rng.standard_normal((2, 1, 20, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    c = cuda.zeros((2, 1, 70, 3))
    gemm(
        c,
        cuda.asarray(np.ascontiguousarray(a.transpose(0, 1, 3, 2))),
        cuda.asarray(b),
        trans_a=True,
        bias=cuda.asarray(bias),
        bias_mode=BIAS_COLUMN,
        tile=GPU_TILE,
    )
    np.testing.assert_allclose(host(c), a @ b + bias, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ whole models, optimizer steps
def _fixed_batch(shape, classes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), np.arange(shape[0]) % classes


def _run_steps(model, make_opt, x, y, steps, device):
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


def lenet5_shaped():
    """LeNet-5's layer sequence (conv-relu-pool twice, three dense layers) at simulator size, 8x8."""
    return L.Sequential(
        L.Conv2d(1, 3, 3, padding=1),
        L.ReLU(),
        L.MaxPool2d(2),
        L.Conv2d(3, 4, 3),
        L.ReLU(),
        L.MaxPool2d(2),
        L.Flatten(),
        L.Linear(4, 8),
        L.ReLU(),
        L.Linear(8, 6),
        L.ReLU(),
        L.Linear(6, 4),
    )


@pytest.mark.parametrize(
    "build,shape,classes,make_opt",
    [
        (lenet5_shaped, (2, 1, 8, 8), 4, lambda p: nc.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3)),
        (
            lambda: nc.models.resnet(8, in_channels=1, num_classes=3, width=2),
            (2, 1, 8, 8),
            3,
            lambda p: nc.optim.Adam(p, lr=1e-2),
        ),
    ],
    ids=["lenet5", "resnet8"],
)
def test_model_training_parity(build, shape, classes, make_opt):
    """Three optimizer steps on the CPU and on CUDA from the same weights: same losses and weights."""
    x, y = _fixed_batch(shape, classes)
    nc.manual_seed(3)
    cpu_losses, cpu_state = _run_steps(build(), make_opt, x, y, 3, "cpu")
    nc.manual_seed(3)
    gpu_losses, gpu_state = _run_steps(build(), make_opt, x, y, 3, "cuda")
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    assert cpu_losses[-1] < cpu_losses[0]
    for k in cpu_state:
        np.testing.assert_allclose(gpu_state[k], cpu_state[k], rtol=1e-3, atol=1e-5, err_msg=k)


# ------------------------------------------------------------------ device API and guards
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


def test_trainer_runs_on_cuda_and_matches_cpu(tmp_path):
    """The training loop on CUDA: batches uploaded into one buffer, weights match a CPU run."""
    from numbacnn.data.loader import DataLoader
    from numbacnn.training.trainer import Trainer

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 1, 6, 6), dtype=np.uint8)
    labels = np.arange(6) % 3
    states = []
    for device in ("cpu", "cuda"):
        nc.manual_seed(1)
        model = L.Sequential(L.Conv2d(1, 2, 3), L.ReLU(), L.Flatten(), L.Linear(32, 3)).to(device)
        trainer = Trainer(
            model,
            nc.losses.CrossEntropyLoss(),
            nc.optim.SGD(model.parameters(), lr=0.1),
            DataLoader(images, labels, batch_size=3, seed=0),
            out_dir=str(tmp_path / device),
            progress=False,
        )
        trainer.fit(1)
        assert len(trainer._upload.buffers) == (0 if device == "cpu" else 1)
        states.append(model.state_dict())
    for k in states[0]:
        np.testing.assert_allclose(states[1][k], states[0][k], rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ real GPU, real sizes
@pytest.mark.gpu
@real_gpu
@pytest.mark.parametrize("cin,cout,hw,stride", [(16, 32, 32, 1), (64, 64, 8, 1), (32, 64, 16, 2)])
def test_conv2d_parity_real_sizes(cin, cout, hw, stride, rng, cuda):
    assert_layer_parity(L.Conv2d(cin, cout, 3, stride=stride, padding=1), (32, cin, hw, hw), rng, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@real_gpu
@pytest.mark.parametrize(
    "build,shape",
    [
        (lambda: nc.models.lenet5(), (64, 1, 28, 28)),
        (lambda: nc.models.resnet(20, in_channels=3), (32, 3, 32, 32)),
    ],
    ids=["lenet5", "resnet20"],
)
def test_model_training_parity_real_sizes(build, shape):
    """Three SGD steps at real sizes: the GPU's float32 weights are as close to a float64 CPU run
    as the CPU's own float32 run is. (Elementwise tolerances do not work here: float32 rounding
    through 20 layers and BatchNorm moves some weights by 1% on the CPU alone.)"""
    x, y = _fixed_batch(shape, 10)
    make_opt = lambda p: nc.optim.SGD(p, lr=0.05, momentum=0.9)  # noqa: E731
    runs = {}
    for name, device, dtype in [("f64", "cpu", np.float64), ("cpu", "cpu", np.float32), ("gpu", "cuda", np.float32)]:
        nc.manual_seed(3)
        runs[name] = _run_steps(build().to(dtype), make_opt, x.astype(dtype), y, 3, device)
    ref_losses, ref = runs["f64"]

    def distance(state):
        """Relative L2 distance of all weights and buffers from the float64 run."""
        num = sum(float(np.sum((state[k].astype(np.float64) - ref[k]) ** 2)) for k in ref)
        return (num / sum(float(np.sum(ref[k] ** 2)) for k in ref)) ** 0.5

    for name in ("cpu", "gpu"):
        np.testing.assert_allclose(runs[name][0], ref_losses, rtol=1e-3, err_msg=name)
    cpu_error, gpu_error = distance(runs["cpu"][1]), distance(runs["gpu"][1])
    assert cpu_error < 1e-3
    assert gpu_error <= 3 * cpu_error + 1e-5, (gpu_error, cpu_error)


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


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_with_fused_relu_parity(training, rng, cuda):
    from test_bn_relu import FusedBatchNormReLU

    layer = FusedBatchNormReLU(3)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, 3)
    layer.bias.data[...] = rng.standard_normal(3) * 0.5
    layer.train(training)
    assert_layer_parity(layer, (2, 3, 2, 3), rng)
