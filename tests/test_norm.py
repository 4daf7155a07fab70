"""BatchNorm2d: reference (train and eval), running statistics, gradients, float32 vs float64."""

import numpy as np
import pytest

import numbacnn as nc

from helpers import batchnorm_ref, gradient_check


def make_bn(c, dtype=np.float64, rng=None):
    bn = nc.layers.BatchNorm2d(c).to(dtype)
    if rng is not None:  # non-trivial affine parameters
        bn.weight.data[...] = rng.uniform(0.5, 1.5, c)
        bn.bias.data[...] = rng.standard_normal(c)
    return bn


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (1, 2, 3, 4), (7, 1, 1, 1)])
def test_training_forward_and_running_statistics(shape, rng):
    x = rng.standard_normal(shape) * 2 + 1
    bn = make_bn(shape[1], rng=rng)
    y = bn(x)
    np.testing.assert_allclose(y, batchnorm_ref(x, bn.weight.data, bn.bias.data, bn.eps), rtol=1e-10, atol=1e-10)
    mean = x.mean(axis=(0, 2, 3))
    var_unbiased = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean, rtol=1e-10)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * var_unbiased, rtol=1e-10)
    assert int(bn.num_batches_tracked) == 1


def test_eval_uses_running_statistics(rng):
    bn = make_bn(3, rng=rng)
    bn.running_mean[...] = [0.5, -1.0, 2.0]
    bn.running_var[...] = [1.5, 0.25, 4.0]
    bn.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    ref = (x - bn.running_mean.reshape(1, -1, 1, 1)) / np.sqrt(bn.running_var.reshape(1, -1, 1, 1) + bn.eps)
    ref = ref * bn.weight.data.reshape(1, -1, 1, 1) + bn.bias.data.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(bn(x), ref, rtol=1e-12)
    before = bn.running_mean.copy()
    bn(x)
    np.testing.assert_array_equal(bn.running_mean, before)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(3, 2, 4, 3), (2, 4, 1, 2)])
def test_gradients(training, shape, rng):
    bn = make_bn(shape[1], rng=rng)
    bn.running_var[...] = rng.uniform(0.5, 2, shape[1])
    bn.train(training)
    assert gradient_check(bn, rng.standard_normal(shape), rtol=1e-5, atol=1e-7) > 0


def test_float32_agrees_with_float64(rng):
    x = rng.standard_normal((8, 4, 6, 6)) * 3 + 2
    b32, b64 = make_bn(4, np.float32), make_bn(4)
    np.testing.assert_allclose(b32(x.astype(np.float32)), b64(x), rtol=1e-4, atol=1e-5)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(b32.backward(dy.astype(np.float32)), b64.backward(dy), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b32.weight.grad, b64.weight.grad, rtol=1e-4, atol=1e-4)


def test_single_value_per_channel_is_rejected_in_training():
    with pytest.raises(ValueError, match="more than one value per channel"):
        nc.layers.BatchNorm2d(3)(np.ones((1, 3, 1, 1), np.float32))


@pytest.mark.parametrize("offset", [0.0, 1e3, -3e4])
def test_statistics_keep_their_digits_when_the_mean_dwarfs_the_spread(offset, rng):
    """The training statistics come from one pass of shifted sums: a channel whose values sit far
    from zero (an input layer fed raw pixels, say) still gets its variance to float32 precision."""
    x = (offset + rng.standard_normal((8, 3, 5, 5)) * 0.01).astype(np.float32)
    layer = nc.layers.BatchNorm2d(3)
    out = layer(x)
    exact = x.astype(np.float64)
    var = exact.var(axis=(0, 2, 3))
    np.testing.assert_allclose(layer.running_mean, 0.1 * exact.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * var * 200 / 199, rtol=1e-6)
    want = (exact - exact.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(var.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(out, want, atol=2e-3)  # float32 x itself holds ~1e-3 of it at 3e4
