"""Whole models and the training loop on CUDA against the CPU: a residual block, LeNet-5- and
ResNet-8-shaped nets over optimizer steps, the Trainer; real sizes on a real GPU."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn import layers as L

from cuda_parity import assert_layer_parity, fixed_batch, needs_cuda, real_gpu, run_steps

pytestmark = needs_cuda


@pytest.mark.parametrize("stride,cin,cout", [(1, 2, 2), (2, 2, 3)], ids=["identity", "projection"])
def test_basic_block_parity(stride, cin, cout, rng, cuda):
    assert_layer_parity(L.BasicBlock(cin, cout, stride), (2, cin, 4, 4), rng)


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
    x, y = fixed_batch(shape, classes)
    nc.manual_seed(3)
    cpu_losses, cpu_state = run_steps(build(), make_opt, x, y, 3, "cpu")
    nc.manual_seed(3)
    gpu_losses, gpu_state = run_steps(build(), make_opt, x, y, 3, "cuda")
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    assert cpu_losses[-1] < cpu_losses[0]
    for k in cpu_state:
        np.testing.assert_allclose(gpu_state[k], cpu_state[k], rtol=1e-3, atol=1e-5, err_msg=k)


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
    x, y = fixed_batch(shape, 10)
    make_opt = lambda p: nc.optim.SGD(p, lr=0.05, momentum=0.9)  # noqa: E731
    runs = {}
    for name, device, dtype in [("f64", "cpu", np.float64), ("cpu", "cpu", np.float32), ("gpu", "cuda", np.float32)]:
        nc.manual_seed(3)
        runs[name] = run_steps(build().to(dtype), make_opt, x.astype(dtype), y, 3, device)
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
