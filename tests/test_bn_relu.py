"""BatchNorm2d with its ReLU fused (batchnorm2d_relu_* kernels; BatchNorm2d.forward_relu /
backward_relu; the residual blocks use them): naive reference, gradients, every backend's
kernels alike, and the block's fused and unfused paths equal."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.kernels import cpu, npy

from helpers import gradient_check


class FusedBatchNormReLU(nc.layers.BatchNorm2d):
    """The fused pair as one layer, for the layer-level checks."""

    def forward(self, x):
        return self.forward_relu(x)

    def backward(self, dy):
        return self.backward_relu(dy)


def make(c, rng, dtype=np.float64):
    layer = FusedBatchNormReLU(c).to(dtype)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, c)
    layer.bias.data[...] = rng.standard_normal(c) * 0.5
    return layer


def naive(x, weight, bias, eps, mean=None, var=None):
    """relu of the batch-normalised x, from the definitions (float64)."""
    mean = x.mean(axis=(0, 2, 3)) if mean is None else mean
    var = x.var(axis=(0, 2, 3)) if var is None else var
    shape = (1, -1, 1, 1)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * weight.reshape(shape) + bias.reshape(shape)
    return np.maximum(y, 0)


def test_training_and_eval_forward_match_the_definition(rng):
    x = rng.standard_normal((4, 3, 5, 6)) * 2 + 1
    layer = make(3, rng)
    np.testing.assert_allclose(
        layer(x), naive(x, layer.weight.data, layer.bias.data, layer.eps), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(layer.running_mean, 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
    layer.eval()
    expected = naive(x, layer.weight.data, layer.bias.data, layer.eps, layer.running_mean, layer.running_var)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)


def assert_gradients(layer, training, rng):
    """Central differences of a fused BatchNorm layer of 2 channels (float64), in training or eval
    mode, on data whose outputs lie away from the ReLU's kink and on both sides of it."""
    layer.running_var[...] = [0.7, 1.6]
    layer.train(training)
    x = rng.standard_normal((3, 2, 4, 3))
    out = layer(x)
    assert np.abs(out[out != 0]).min() > 1e-3  # away from the kink
    assert 0 < np.count_nonzero(out) < out.size  # both sides of it
    assert gradient_check(layer, x, rtol=1e-5, atol=1e-7) > 0


@pytest.mark.parametrize("training", [True, False])
def test_gradients_by_central_differences(training, rng):
    assert_gradients(make(2, rng), training, rng)


def assert_backends_agree(rng, training, with_dx, forward, backward):
    """Run a fused BatchNorm's kernels on the compiled CPU backend and on the NumPy twins, on the
    same float32 data: ``forward(backend, out, mean, invstd, running_mean, running_var, x, weight,
    bias)`` and ``backward(backend, dx, dweight, dbias, dy, out, x, weight, mean, invstd)``, which
    returns any further outputs to compare; every output agrees to float32's precision."""
    c = 5
    x = (rng.standard_normal((6, c, 7, 7)) * 1.5 + 0.3).astype(np.float32)
    weight = rng.uniform(0.5, 1.5, c).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    results = []
    for backend in (cpu, npy):
        out, mean, invstd = np.empty_like(x), np.empty(c, np.float32), np.empty(c, np.float32)
        running_mean, running_var = np.full(c, 0.2, np.float32), np.full(c, 1.3, np.float32)
        forward(backend, out, mean, invstd, running_mean, running_var, x, weight, bias)
        dy = np.random.default_rng(7).standard_normal(x.shape).astype(np.float32)
        dx = np.empty_like(x) if with_dx else None
        dweight, dbias = np.zeros(c, np.float32), np.zeros(c, np.float32)
        more = backward(backend, dx, dweight, dbias, dy, out, x, weight, mean, invstd)
        results.append([out, running_mean, running_var, dweight, dbias, *more] + ([dx] if with_dx else []))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("with_dx", [True, False])
def test_compiled_kernels_match_their_numpy_twins(training, with_dx, rng):
    def forward(backend, out, mean, invstd, running_mean, running_var, x, weight, bias):
        if training:
            backend.batchnorm2d_relu_forward_train(
                out, mean, invstd, running_mean, running_var, x, weight, bias, 1e-5, 0.1
            )
        else:
            backend.batchnorm2d_relu_forward_eval(out, mean, invstd, x, weight, bias, running_mean, running_var, 1e-5)

    def backward(backend, dx, dweight, dbias, dy, out, x, weight, mean, invstd):
        backend.batchnorm2d_relu_backward(dx, dweight, dbias, dy, out, x, weight, mean, invstd, training)
        return []

    assert_backends_agree(rng, training, with_dx, forward, backward)


def test_a_block_gives_the_same_results_fused_and_unfused(rng):
    """The block falls back to BatchNorm then ReLU when bn.forward is replaced (as
    inspect.feature_maps does): both paths agree to the last bit."""
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    dy = rng.standard_normal((2, 8, 3, 3)).astype(np.float32)
    runs = []
    for fused in (True, False):
        nc.manual_seed(3)
        block = nc.layers.BasicBlock(4, 8, stride=2)
        if not fused:
            original = block.bn1.forward
            object.__setattr__(block.bn1, "forward", lambda z: original(z))
        out = block(x).copy()
        dx = block.backward(dy).copy()
        runs.append([out, dx] + [p.grad.copy() for p in block.parameters()] + [block.bn1.running_var.copy()])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_backward_relu_needs_forward_relu(rng):
    layer = nc.layers.BatchNorm2d(2).to(np.float64)
    layer(rng.standard_normal((2, 2, 3, 3)))
    with pytest.raises(RuntimeError, match="forward_relu"):
        layer.backward_relu(rng.standard_normal((2, 2, 3, 3)))
