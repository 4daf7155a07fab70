"""The classic toolbox layers: padding modes and "same"/"valid", PReLU, Maxout, Dropout2d, Concat,
pooling with ceil_mode / count_include_pad, adaptive average pooling. Each against a naive NumPy
reference, a float64 gradient check, and (where PyTorch is installed) PyTorch itself."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn import layers as L

from helpers import away_from_zero, conv2d_ref, distinct_values, gradient_check, pool2d_ref

NUMPY_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _torch():
    return pytest.importorskip("torch")


# --------------------------------------------------------------------------- padding
@pytest.mark.parametrize("mode", sorted(NUMPY_PAD))
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_conv_padding_modes_match_numpy_pad(mode, padding, rng):
    conv = L.Conv2d(2, 3, (3, 4) if padding == "same" else 3, padding=padding, padding_mode=mode).double()
    x = rng.standard_normal((2, 2, 5, 6))
    if padding == "same":  # kernel (3, 4): rows 1 + 1, columns 1 + 2 (the extra one on the right)
        pads = ((1, 1), (1, 2))
    else:
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        pads = ((ph, ph), (pw, pw))
    padded = np.pad(x, ((0, 0), (0, 0)) + pads, mode=NUMPY_PAD[mode])
    want = conv2d_ref(padded, conv.weight.data, conv.bias.data)
    np.testing.assert_allclose(conv(x), want, rtol=1e-12, atol=1e-12)
    if padding == "same":
        assert conv(x).shape[2:] == x.shape[2:]


@pytest.mark.parametrize("mode", sorted(NUMPY_PAD))
def test_conv_padding_mode_gradients(mode, rng):
    conv = L.Conv2d(2, 2, 3, padding=(2, 1), padding_mode=mode)
    assert gradient_check(conv, rng.standard_normal((2, 2, 4, 5)), rtol=1e-5, atol=1e-8) > 0


def test_pad_kernel_routes_gradients_to_their_sources(rng):
    """pad2d_backward is the transpose of pad2d_forward: <pad(x), g> == <x, pad_backward(g)>."""
    ops = nc.get_device("cpu").ops
    for mode in range(4):
        x = rng.standard_normal((1, 2, 3, 4))
        padded = np.zeros((1, 2, 3 + 2 + 1, 4 + 2 + 3))
        ops.pad2d_forward(padded, x, 2, 2, mode)
        g = rng.standard_normal(padded.shape)
        dx = np.zeros_like(x)
        ops.pad2d_backward(dx, g, 2, 2, mode)
        assert np.sum(padded * g) == pytest.approx(np.sum(x * dx), rel=1e-12)


def test_bad_padding_is_refused():
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        L.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="'same' needs stride 1"):
        L.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="'same' or 'valid'"):
        L.Conv2d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="too large for reflect"):
        L.Conv2d(1, 1, 3, padding=3, padding_mode="reflect")(np.zeros((1, 1, 3, 3), np.float32))
    assert L.Conv2d(1, 1, 3, padding="valid")(np.zeros((1, 1, 5, 5), np.float32)).shape == (1, 1, 3, 3)


@pytest.mark.parametrize("mode", sorted(NUMPY_PAD))
def test_padding_modes_match_pytorch(mode, rng):
    torch = _torch()
    ours = L.Conv2d(3, 4, 3, padding=2, padding_mode=mode)
    theirs = torch.nn.Conv2d(3, 4, 3, padding=2, padding_mode=mode)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- PReLU, Maxout
@pytest.mark.parametrize("num_parameters", [1, 3])
def test_prelu_reference_and_gradients(num_parameters, rng):
    layer = L.PReLU(num_parameters, init=0.1).double()
    layer.weight.data[...] = rng.uniform(0.05, 0.5, num_parameters)
    x = away_from_zero(rng, (2, 3, 4, 2))
    slope = layer.weight.data.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(layer(x), np.where(x > 0, x, slope * x), rtol=1e-15)
    assert gradient_check(layer, x, rtol=1e-6, atol=1e-9) > 0
    assert list(layer.state_dict()) == ["weight"]
    assert gradient_check(L.PReLU(3).double(), away_from_zero(rng, (4, 3)), rtol=1e-6) > 0  # (N, C) input


def test_prelu_matches_pytorch(rng):
    torch = _torch()
    ours, theirs = L.PReLU(3, init=0.2), torch.nn.PReLU(3, init=0.2)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    theirs(tx).sum().backward()
    ours.backward(np.ones_like(ours(x)))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-5)


@pytest.mark.parametrize("shape", [(2, 6, 3, 3), (4, 6)])
def test_maxout_reference_and_gradients(shape, rng):
    layer = L.Maxout(3).double()
    x = distinct_values(rng, shape)
    grouped = x.reshape((shape[0], 2, 3) + shape[2:])
    np.testing.assert_array_equal(layer(x), grouped.max(axis=2))
    assert gradient_check(layer, x, rtol=1e-6) > 0
    with pytest.raises(ValueError, match="not divisible into groups of pool_size=4"):
        L.Maxout(4)(np.zeros((1, 6), np.float32))


# --------------------------------------------------------------------------- Dropout2d, Concat
def test_dropout2d_drops_whole_channels(rng):
    nc.manual_seed(0)
    layer = L.Dropout2d(0.4)
    x = rng.uniform(1, 2, (64, 8, 3, 3)).astype(np.float32)
    y = layer(x)
    planes = y.reshape(64 * 8, 9)
    dropped = (planes == 0).all(axis=1)
    kept = np.isclose(planes, x.reshape(64 * 8, 9) / 0.6).all(axis=1)
    assert (dropped | kept).all() and 0.3 < dropped.mean() < 0.5
    dx = layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(dx == 0, y == 0)
    assert layer.eval()(x) is x


def test_concat_reference_gradients_and_summary(rng):
    branches = [L.Conv2d(3, 2, 1), L.Sequential(L.Conv2d(3, 2, 3, padding=1), L.Tanh()), L.MaxPool2d(3, 1, 1)]
    layer = L.Concat(*branches).double()
    x = distinct_values(rng, (2, 3, 4, 4))
    want = np.concatenate([b.forward(x).copy() for b in layer.branches], axis=1)
    np.testing.assert_allclose(layer(x), want)
    assert gradient_check(layer, x, rtol=1e-5, atol=1e-8) > 0
    assert list(layer.state_dict()) == ["0.weight", "0.bias", "1.0.weight", "1.0.bias"]
    rows, shape = layer.summary_rows((1, 3, 4, 4))
    assert shape == (1, 7, 4, 4) and rows[-1][1] == "Concat"
    with pytest.raises(ValueError, match="differ outside the channel"):
        L.Concat(L.Conv2d(3, 1, 1), L.Conv2d(3, 1, 3))(x)


# --------------------------------------------------------------------------- pooling options
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("include_pad", [True, False])
def test_avgpool_options(ceil_mode, include_pad, rng):
    layer = L.AvgPool2d(3, 2, 1, ceil_mode=ceil_mode, count_include_pad=include_pad).double()
    x = rng.standard_normal((2, 2, 6, 7))
    np.testing.assert_allclose(
        layer(x), pool2d_ref(x, (3, 3), (2, 2), (1, 1), "avg", ceil_mode, include_pad), rtol=1e-12
    )
    assert gradient_check(layer, x, rtol=1e-6) > 0


def test_maxpool_ceil_mode(rng):
    layer = L.MaxPool2d(2, ceil_mode=True).double()
    x = distinct_values(rng, (1, 2, 5, 5))
    y = layer(x)
    assert y.shape == (1, 2, 3, 3)
    np.testing.assert_array_equal(y[:, :, 2, 2], x[:, :, 4, 4])  # the extra window holds one pixel
    np.testing.assert_array_equal(y[:, :, :2, :2], x[:, :, :4, :4].reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5)))
    assert gradient_check(layer, x, rtol=1e-6) > 0


@pytest.mark.parametrize("output_size", [(2, 3), 3, (None, 2)])
def test_adaptive_avgpool_bins(output_size, rng):
    layer = L.AdaptiveAvgPool2d(output_size).double()
    x = rng.standard_normal((2, 2, 5, 7))
    y = layer(x)
    oh, ow = y.shape[2:]
    for i in range(oh):
        for j in range(ow):
            y0, y1 = (i * 5) // oh, -((-(i + 1) * 5) // oh)
            x0, x1 = (j * 7) // ow, -((-(j + 1) * 7) // ow)
            np.testing.assert_allclose(y[:, :, i, j], x[:, :, y0:y1, x0:x1].mean(axis=(2, 3)), rtol=1e-12)
    assert gradient_check(layer, x, rtol=1e-6) > 0


def test_pooling_options_match_pytorch(rng):
    torch = _torch()
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    tx = torch.from_numpy(x)
    cases = [
        (L.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), torch.nn.AvgPool2d(3, 2, 1, True, False)),
        (L.AvgPool2d(2, ceil_mode=True), torch.nn.AvgPool2d(2, ceil_mode=True)),
        (L.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (L.AdaptiveAvgPool2d((3, 4)), torch.nn.AdaptiveAvgPool2d((3, 4))),
    ]
    for ours, theirs in cases:
        np.testing.assert_allclose(ours(x), theirs(tx).numpy(), rtol=1e-5, atol=1e-6, err_msg=repr(ours))
