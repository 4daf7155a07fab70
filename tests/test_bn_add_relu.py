"""BatchNorm2d fused with a residual add and ReLU (batchnorm2d_add_relu_* kernels;
BatchNorm2d.forward_add_relu / backward_add_relu; the last stage of every residual block): naive
reference, gradients, every backend's kernels alike, and a block's fused and unfused paths equal."""

import numpy as np
import pytest
from test_bn_relu import assert_backends_agree, assert_gradients
from test_bn_relu import naive as naive_bn_relu

import numbacnn as nc


class SelfResidual(nc.layers.BatchNorm2d):
    """relu(batchnorm(x) + x) as one layer: both of forward_add_relu's inputs are x, so the input
    gradient is the sum of the two it returns, and one check covers both."""

    def forward(self, x):
        return self.forward_add_relu(x, x)

    def backward(self, dy):
        dx, dresidual = self.backward_add_relu(dy)
        total = self._work("total", dx.shape)
        self.device.ops.add_forward(total, dx, dresidual)
        return total


def make(c, rng, dtype=np.float64):
    layer = SelfResidual(c).to(dtype)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, c)
    layer.bias.data[...] = rng.standard_normal(c) * 0.5
    return layer


def naive(x, residual, weight, bias, eps, mean=None, var=None):
    """relu(batchnorm(x) + residual) from the definitions (float64)."""
    mean = x.mean(axis=(0, 2, 3)) if mean is None else mean
    var = x.var(axis=(0, 2, 3)) if var is None else var
    shape = (1, -1, 1, 1)
    normalised = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return np.maximum(normalised * weight.reshape(shape) + bias.reshape(shape) + residual, 0)


def test_the_naive_reference_without_a_residual_is_batchnorm_relu(rng):
    x = rng.standard_normal((3, 2, 4, 4))
    w, b = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    np.testing.assert_allclose(naive(x, 0 * x, w, b, 1e-5), naive_bn_relu(x, w, b, 1e-5), rtol=1e-14)


def test_training_and_eval_forward_match_the_definition(rng):
    x = rng.standard_normal((4, 3, 5, 6)) * 2 + 1
    residual = rng.standard_normal(x.shape)
    layer = nc.layers.BatchNorm2d(3).to(np.float64)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, 3)
    layer.bias.data[...] = rng.standard_normal(3) * 0.5
    got = layer.forward_add_relu(x, residual)
    np.testing.assert_allclose(
        got, naive(x, residual, layer.weight.data, layer.bias.data, layer.eps), rtol=1e-12, atol=1e-12
    )
    assert 0 < np.count_nonzero(got) < got.size
    np.testing.assert_allclose(layer.running_mean, 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
    layer.eval()
    expected = naive(x, residual, layer.weight.data, layer.bias.data, layer.eps, layer.running_mean, layer.running_var)
    np.testing.assert_allclose(layer.forward_add_relu(x, residual), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_gradients_by_central_differences(training, rng):
    assert_gradients(make(2, rng), training, rng)


def test_the_residual_gradient_is_dy_where_the_output_is_positive(rng):
    layer = nc.layers.BatchNorm2d(3).to(np.float64)
    x, residual = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 4, 4))
    out = layer.forward_add_relu(x, residual).copy()
    dy = rng.standard_normal(x.shape)
    dx, dresidual = layer.backward_add_relu(dy)
    np.testing.assert_array_equal(dresidual, np.where(out > 0, dy, 0))
    # dx is BatchNorm's own gradient of that, as the unfused layer gives it.
    plain = nc.layers.BatchNorm2d(3).to(np.float64)
    plain.forward(x)
    np.testing.assert_allclose(dx, plain.backward(np.where(out > 0, dy, 0)), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(layer.weight.grad, plain.weight.grad, rtol=1e-13)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("with_dx", [True, False])
def test_compiled_kernels_match_their_numpy_twins(training, with_dx, rng):
    residual = rng.standard_normal((6, 5, 7, 7)).astype(np.float32)

    def forward(backend, out, mean, invstd, running_mean, running_var, x, weight, bias):
        if training:
            backend.batchnorm2d_add_relu_forward_train(
                out, mean, invstd, running_mean, running_var, x, residual, weight, bias, 1e-5, 0.1
            )
        else:
            backend.batchnorm2d_add_relu_forward_eval(
                out, mean, invstd, x, residual, weight, bias, running_mean, running_var, 1e-5
            )

    def backward(backend, dx, dweight, dbias, dy, out, x, weight, mean, invstd):
        dresidual = np.empty_like(x)
        backend.batchnorm2d_add_relu_backward(dx, dresidual, dweight, dbias, dy, out, x, weight, mean, invstd, training)
        return [dresidual]

    assert_backends_agree(rng, training, with_dx, forward, backward)


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_a_block_gives_the_same_results_joined_and_unjoined(block, rng):
    """The block falls back to BatchNorm, then add and ReLU, when its last BatchNorm's forward is
    replaced (as inspect.feature_maps does). The fused pass rounds once where the two round twice,
    so they agree to float32's precision, not to the bit."""
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    dy = rng.standard_normal((2, 8, 3, 3)).astype(np.float32)
    runs = []
    for joined in (True, False):
        nc.manual_seed(3)
        layer = nc.layers.BasicBlock(4, 8, stride=2) if block == "basic" else nc.layers.Bottleneck(4, 2, stride=2)
        last = layer.bn2 if block == "basic" else layer.bn3
        if not joined:
            original = last.forward
            object.__setattr__(last, "forward", lambda z: original(z))
        out = layer(x).copy()
        dx = layer.backward(dy).copy()
        assert layer._joined is joined
        runs.append([out, dx] + [p.grad.copy() for p in layer.parameters()] + [last.running_var.copy()])
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_misuse_is_named(rng):
    layer = nc.layers.BatchNorm2d(2).to(np.float64)
    x = rng.standard_normal((2, 2, 3, 3))
    with pytest.raises(ValueError, match="residual must have x's shape"):
        layer.forward_add_relu(x, x[:1])
    layer.forward_add_relu(x, x)
    with pytest.raises(RuntimeError, match="backward_add_relu"):
        layer.backward(x)
    with pytest.raises(RuntimeError, match="forward_relu"):
        layer.backward_relu(x)
    layer.forward_relu(x)
    with pytest.raises(RuntimeError, match="forward_add_relu"):
        layer.backward_add_relu(x)
