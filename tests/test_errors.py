"""Bad input gets a clear ValueError/TypeError naming what was expected and what was received."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.runtime import devices

L = nc.layers


@pytest.mark.parametrize(
    "layer,x,err,match",
    [
        (
            L.Conv2d(3, 4, 3),
            np.zeros((3, 8, 8), np.float32),
            ValueError,
            r"expected input of shape \(N, 3, H, W\).*got shape \(3, 8, 8\)",
        ),
        (
            L.Conv2d(3, 4, 3),
            np.zeros((2, 1, 8, 8), np.float32),
            ValueError,
            r"expected 3 input channels.*got shape \(2, 1, 8, 8\)",
        ),
        (L.Conv2d(3, 4, 3), np.zeros((2, 3, 8, 8), np.float64), TypeError, r"expected float32 input.*got float64"),
        (L.Conv2d(3, 4, 3), np.zeros((2, 3, 8, 8), np.int32), TypeError, r"expected float32 input.*got int32"),
        (L.Conv2d(3, 4, 3), np.zeros((2, 8, 8, 3), np.float32).transpose(0, 3, 1, 2), ValueError, "not C-contiguous"),
        (L.Conv2d(3, 4, 5), np.zeros((1, 3, 3, 3), np.float32), ValueError, "too small for kernel"),
        (L.Linear(10, 2), np.zeros((4, 9), np.float32), ValueError, r"expected 10 input features.*got shape \(4, 9\)"),
        (L.Linear(10, 2), np.zeros((4, 2, 5), np.float32), ValueError, r"expected input of shape \(N, 10\)"),
        (L.MaxPool2d(2), np.zeros((4, 4), np.float32), ValueError, r"\(N, C, H, W\)"),
        (L.MaxPool2d(3), np.zeros((1, 1, 2, 2), np.float32), ValueError, "smaller than the window"),
        (L.BatchNorm2d(4), np.zeros((2, 3, 4, 4), np.float32), ValueError, "expected 4 input channels"),
        (L.ReLU(), [[1.0, 2.0]], TypeError, "expected a numpy array"),
        (L.ReLU(), np.zeros((0, 3), np.float32), ValueError, "empty batch"),
    ],
)
def test_bad_input_is_named(layer, x, err, match):
    with pytest.raises(err, match=match):
        layer.forward(x)


def test_model_reports_the_first_bad_layer():
    model = nc.models.lenet5()
    with pytest.raises(ValueError, match=r"Conv2d: expected 1 input channels"):
        model(np.zeros((2, 3, 28, 28), np.float32))


def test_backward_before_forward_and_wrong_gradient_shape():
    conv = L.Conv2d(1, 2, 3)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        conv.backward(np.zeros((1, 2, 2, 2), np.float32))
    conv(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"expected a gradient of shape \(1, 2, 2, 2\)"):
        conv.backward(np.zeros((1, 2, 3, 3), np.float32))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: L.Conv2d(3, 4, 3, groups=2), "divisible by groups"),
        (lambda: L.Conv2d(3, 4, 0), ">= 1"),
        (lambda: L.Conv2d(3, 4, (3, 3, 3)), "pair of ints"),
        (lambda: L.Linear(0, 3), "positive int"),
        (lambda: L.AdaptiveAvgPool2d(0), "positive ints"),
        (lambda: L.AdaptiveAvgPool2d((2, 2, 2)), "positive ints"),
    ],
)
def test_bad_constructor_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_unknown_device_and_missing_cuda(monkeypatch):
    with pytest.raises(ValueError, match="unknown device"):
        nc.get_device("tpu")
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    with pytest.raises(nc.DeviceError, match="NUMBA_ENABLE_CUDASIM=1"):
        nc.get_device("cuda")
    assert nc.get_device("auto") == nc.get_device("cpu")
