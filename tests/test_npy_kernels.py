"""kernels.npy, the NumPy twins quick start runs while the compiled kernels are built: every layer
agrees with the compiled kernels (forward, input and parameter gradients, running statistics),
and what one backend saves for backward (argmax indices, dropout masks) is bit for bit what the
other saves, so a forward pass on one and a backward pass on the other agree too."""

import numpy as np
import pytest

import numbacnn as nc
import numbacnn.kernels.cpu as cpu_kernels
import numbacnn.kernels.npy as npy_kernels
from numbacnn import layers as L
from numbacnn.runtime.quick_start import numpy_kernels

from helpers import gather_case, gather_ref


def _run(layer, x, dy):
    y = layer.forward(x).copy()
    dx = layer.backward(dy)
    dx = None if dx is None else dx.copy()
    grads = [p.grad.copy() for p in layer.parameters()]
    buffers = {k: np.array(v, copy=True) for k, v in layer.state_dict().items()}
    return y, dx, grads, buffers


def _reset(layer, start):
    """Weights and running statistics as at the start, no gradients, dropout's first mask next."""
    layer.load_state_dict(start)
    for p in layer.parameters():
        p.grad[...] = 0
    for _, m in layer.named_modules():
        if hasattr(m, "calls"):
            m.calls[...] = 0


def assert_twins_agree(layer, shape, rng, dtype=np.float32, rtol=1e-5, atol=1e-6):
    layer.to(dtype)
    start = {k: np.array(v, copy=True) for k, v in layer.state_dict().items()}
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(layer.output_shape(shape)).astype(dtype)
    _reset(layer, start)
    compiled = _run(layer, x, dy)
    _reset(layer, start)
    with numpy_kernels():
        twin = _run(layer, x, dy)

    def close(actual, desired, what):
        # Sums with cancellation (a weight gradient entry near 0 among entries of 40) round to
        # within atol of the array's scale, not of the entry's.
        scale = max(1.0, float(np.abs(desired).max())) if desired.size else 1.0
        np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol * scale, err_msg=what)

    close(twin[0], compiled[0], "forward")
    if compiled[1] is not None:
        close(twin[1], compiled[1], "input gradient")
    for g_twin, g in zip(twin[2], compiled[2]):
        close(g_twin, g, "parameter gradient")
    for k, v in compiled[3].items():
        close(twin[3][k], v, k)


LAYERS = {
    "conv3x3": (lambda: L.Conv2d(3, 4, 3, padding=1), (2, 3, 6, 5)),
    "conv_stride2_nobias": (lambda: L.Conv2d(2, 3, 3, stride=2, bias=False), (2, 2, 7, 5)),
    "conv_groups_dilation": (
        lambda: L.Conv2d(4, 4, (3, 2), stride=(1, 2), padding=(2, 1), dilation=2, groups=2),
        (2, 4, 6, 7),
    ),
    "conv1x1": (lambda: L.Conv2d(3, 5, 1), (2, 3, 4, 4)),
    "conv5x5_lenet": (lambda: L.Conv2d(1, 6, 5, padding=2), (3, 1, 12, 12)),
    "conv_reflect": (lambda: L.Conv2d(2, 2, 3, padding=(2, 1), padding_mode="reflect"), (1, 2, 3, 4)),
    "conv_replicate": (lambda: L.Conv2d(2, 2, 3, padding=1, padding_mode="replicate"), (1, 2, 3, 3)),
    "conv_circular": (lambda: L.Conv2d(2, 2, 3, padding=2, padding_mode="circular"), (1, 2, 3, 3)),
    "conv_same_even": (lambda: L.Conv2d(2, 2, 2, padding="same"), (1, 2, 3, 3)),
    "maxpool2": (lambda: L.MaxPool2d(2), (2, 3, 4, 6)),
    "maxpool3s2p1": (lambda: L.MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 5)),
    "maxpool3s1p1": (lambda: L.MaxPool2d(3, 1, 1), (1, 2, 5, 5)),
    "maxpool_ceil": (lambda: L.MaxPool2d(2, ceil_mode=True), (1, 2, 3, 5)),
    "avgpool2": (lambda: L.AvgPool2d(2), (2, 2, 4, 4)),
    "avgpool3s2p1": (lambda: L.AvgPool2d(3, stride=2, padding=1), (2, 2, 5, 6)),
    "avgpool_ceil_nopad": (lambda: L.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 4, 5)),
    "global_avg": (lambda: L.AdaptiveAvgPool2d(1), (3, 2, 3, 4)),
    "adaptive_avg": (lambda: L.AdaptiveAvgPool2d((2, 3)), (1, 2, 3, 4)),
    "linear": (lambda: L.Linear(7, 5), (3, 7)),
    "linear_nobias": (lambda: L.Linear(4, 3, bias=False), (2, 4)),
    "batchnorm": (lambda: L.BatchNorm2d(3), (2, 3, 3, 4)),
    "batchnorm_eval": (lambda: L.BatchNorm2d(3).eval(), (2, 3, 3, 4)),
    "relu": (lambda: L.ReLU(), (2, 3, 5)),
    "leaky_relu": (lambda: L.LeakyReLU(0.1), (2, 3, 5)),
    "elu": (lambda: L.ELU(0.7), (2, 3, 5)),
    "sigmoid": (lambda: L.Sigmoid(), (2, 3, 5)),
    "tanh": (lambda: L.Tanh(), (2, 3, 5)),
    "softmax": (lambda: L.Softmax(), (3, 5)),
    "dropout": (lambda: L.Dropout(0.3), (4, 25)),
    "dropout2d": (lambda: L.Dropout2d(0.5), (3, 4, 2, 2)),
    "prelu_c": (lambda: L.PReLU(3), (2, 3, 2, 2)),
    "prelu_1": (lambda: L.PReLU(), (2, 3)),
    "maxout": (lambda: L.Maxout(2), (2, 4, 2, 2)),
    "concat": (lambda: L.Concat(L.Conv2d(2, 1, 1), L.MaxPool2d(3, 1, 1)), (1, 2, 3, 3)),
    "basic_block": (lambda: L.BasicBlock(2, 3, 2), (2, 2, 4, 4)),
    "bottleneck": (lambda: L.Bottleneck(4, 2, 1), (2, 4, 3, 3)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_twins_agree(name, rng):
    build, shape = LAYERS[name]
    # Blocks chain several layers: float32 rounding differences grow along the chain.
    assert_twins_agree(build(), shape, rng, rtol=1e-4 if "block" in name or name == "bottleneck" else 1e-5)


@pytest.mark.parametrize("name", ["conv_groups_dilation", "maxpool3s2p1", "batchnorm", "basic_block"])
def test_layer_twins_agree_in_float64(name, rng):
    build, shape = LAYERS[name]
    assert_twins_agree(build(), shape, rng, np.float64, rtol=1e-11, atol=1e-12)


def test_frozen_and_first_layer_paths(rng):
    """dw=None (a frozen weight) and dx=None (a first layer) take their own paths in both."""
    frozen = L.Conv2d(2, 3, 3, padding=1)
    frozen.weight.requires_grad = False
    assert_twins_agree(frozen, (2, 2, 4, 4), rng)
    first = L.Conv2d(1, 4, 5, padding=2)
    first.input_grad = False
    assert_twins_agree(first, (2, 1, 8, 8), rng)


def test_lenet5_step_agrees(rng):
    """One whole LeNet-5 training step on each backend, from the same weights."""
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    y = np.array([0, 3, 7, 9])
    results = []
    for backend in ("compiled", "numpy"):
        nc.manual_seed(0)
        model = nc.models.lenet5()
        opt = nc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        crit = nc.losses.CrossEntropyLoss(label_smoothing=0.1)
        with numpy_kernels() if backend == "numpy" else _nothing():
            loss = crit.forward(model(x), y)
            model.backward(crit.backward())
            opt.step()
        results.append((loss, {k: np.array(v) for k, v in model.state_dict().items()}))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-6)
    for k, v in results[0][1].items():
        np.testing.assert_allclose(results[1][1][k], v, rtol=1e-5, atol=1e-6, err_msg=k)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------- saved state, bit for bit
def test_max_pool_indices_are_the_same_ties_included(rng):
    x = rng.integers(0, 3, (2, 3, 7, 7)).astype(np.float32)  # many tied maxima
    for kernel, stride, padding in [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 3), (1, 1), (1, 1))]:
        oh = (7 + 2 * padding[0] - kernel[0]) // stride[0] + 1
        outs = [np.empty((2, 3, oh, oh), np.float32) for _ in range(2)]
        idx = [np.empty((2, 3, oh, oh), np.int32) for _ in range(2)]
        cpu_kernels.maxpool2d_forward(outs[0], idx[0], x, kernel, stride, padding)
        npy_kernels.maxpool2d_forward(outs[1], idx[1], x, kernel, stride, padding)
        np.testing.assert_array_equal(outs[1], outs[0])
        np.testing.assert_array_equal(idx[1], idx[0])


def test_maxout_indices_and_dropout_masks_are_the_same(rng):
    x = rng.integers(0, 2, (2, 6, 3)).astype(np.float32)
    results = []
    for kernels in (cpu_kernels, npy_kernels):
        out, idx = np.empty((2, 3, 3), np.float32), np.empty((2, 3, 3), np.int32)
        kernels.maxout_forward(out, idx, x, 2)
        drop_out, mask = np.empty((5, 7), np.float32), np.empty((5, 7), np.float32)
        kernels.dropout_forward(drop_out, mask, np.ones((5, 7), np.float32), 0.4, 12345)
        results.append((out, idx, drop_out, mask))
    for a, b in zip(*results):
        np.testing.assert_array_equal(b, a)


def test_optimizer_steps_agree(rng):
    for name, kwargs in [
        ("sgd_step", dict(lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True)),
        ("sgd_step", dict(lr=0.1, momentum=0.0, weight_decay=0.0, nesterov=False)),
        ("adam_step", dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=1e-2, decoupled=False, step=3)),
        ("adam_step", dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=1e-2, decoupled=True, step=1)),
    ]:
        arrays = [rng.standard_normal(37).astype(np.float32) for _ in range(3 if name == "sgd_step" else 4)]
        arrays[-1] = np.abs(arrays[-1])  # second moments are >= 0
        compiled, twin = [a.copy() for a in arrays], [a.copy() for a in arrays]
        getattr(cpu_kernels, name)(*compiled, **kwargs)
        getattr(npy_kernels, name)(*twin, **kwargs)
        for a, b in zip(compiled, twin):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7, err_msg=name)


def test_losses_agree(rng):
    logits = rng.standard_normal((5, 4)).astype(np.float32) * 3
    targets = rng.integers(0, 4, 5)
    pair = []
    for kernels in (cpu_kernels, npy_kernels):
        losses, probs, d = np.empty(5, np.float32), np.empty((5, 4), np.float32), np.empty((5, 4), np.float32)
        kernels.softmax_cross_entropy_forward(losses, probs, logits, targets, 0.1)
        kernels.softmax_cross_entropy_backward(d, probs, targets, 0.1, 0.2)
        loss, diff, dpred = np.empty(1, np.float32), np.empty((5, 4), np.float32), np.empty((5, 4), np.float32)
        kernels.mse_forward(loss, diff, logits, probs)
        kernels.mse_backward(dpred, diff, 0.5)
        pair.append((losses, probs, d, loss, dpred))
    for a, b in zip(*pair):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("pad", [0, 4])
def test_gather_batch_matches_the_reference_on_every_backend(pad, rng):
    case = gather_case(rng, pad)
    expected, expected_labels = gather_ref(*case)
    for backend in (cpu_kernels, npy_kernels):
        out, out_labels = np.empty(expected.shape, np.float32), np.empty(4, np.int64)
        backend.gather_batch(out, out_labels, *case)
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(out_labels, expected_labels)
