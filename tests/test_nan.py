"""NaN propagates through every op, as in PyTorch: a diverged network must not look healthy.

(ReLU written as ``x if x > 0 else 0`` and max pooling that let a later finite value replace a
NaN turned NaN into finite numbers.) Each case runs on the CPU and, in the simulator or on a GPU,
on CUDA."""

import numpy as np
import pytest

import numbacnn as nc

L = nc.layers

# (layer factory, input shape, index of the NaN, output indices that must be NaN)
CASES = [
    ("relu", L.ReLU, (2, 5), (0, 1), [(0, 1)]),
    ("leaky_relu", L.LeakyReLU, (2, 5), (0, 1), [(0, 1)]),
    ("elu", L.ELU, (2, 5), (1, 4), [(1, 4)]),
    ("sigmoid", L.Sigmoid, (2, 5), (1, 0), [(1, 0)]),
    ("tanh", L.Tanh, (2, 5), (0, 0), [(0, 0)]),
    ("softmax", L.Softmax, (2, 5), (1, 2), [(1, k) for k in range(5)]),
    ("dropout", lambda: L.Dropout(0.9), (2, 50), (1, 7), [(1, 7)]),  # dropped or kept: NaN * 0 is NaN
    # NaN first in its window, then larger finite values: the NaN must survive them.
    ("maxpool2x2", lambda: L.MaxPool2d(2), (1, 1, 4, 4), (0, 0, 0, 0), [(0, 0, 0, 0)]),
    ("maxpool3s1", lambda: L.MaxPool2d(3, stride=1), (1, 1, 4, 4), (0, 0, 0, 0), [(0, 0, 0, 0)]),
    ("avgpool", lambda: L.AvgPool2d(2), (1, 1, 4, 4), (0, 0, 3, 3), [(0, 0, 1, 1)]),
    ("global_avg", lambda: L.AdaptiveAvgPool2d(1), (1, 2, 3, 3), (0, 1, 2, 2), [(0, 1, 0, 0)]),
    ("linear", lambda: L.Linear(5, 3), (2, 5), (1, 2), [(1, 0), (1, 1), (1, 2)]),
    ("conv", lambda: L.Conv2d(1, 2, 3, padding=1), (1, 1, 4, 4), (0, 0, 0, 0), [(0, 0, 0, 0), (0, 1, 1, 1)]),
    ("batchnorm", lambda: L.BatchNorm2d(2), (2, 2, 2, 2), (0, 1, 0, 0), [(1, 1, 1, 1)]),
]


def _input(shape, nan_at):
    x = np.linspace(1.0, 2.0, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    x[nan_at] = np.nan
    return x


def _check(layer, shape, nan_at, must_be_nan, device):
    layer.to(device)
    y = device.to_host(layer(device.asarray(_input(shape, nan_at))))
    for index in must_be_nan:
        assert np.isnan(y[index]), (index, y)


@pytest.mark.parametrize("name,make,shape,nan_at,must_be_nan", CASES, ids=[c[0] for c in CASES])
def test_nan_propagates_on_cpu(name, make, shape, nan_at, must_be_nan):
    _check(make(), shape, nan_at, must_be_nan, nc.get_device("cpu"))


@pytest.mark.skipif(not nc.cuda_available(), reason="no CUDA GPU and no simulator")
@pytest.mark.parametrize("name,make,shape,nan_at,must_be_nan", CASES, ids=[c[0] for c in CASES])
def test_nan_propagates_on_cuda(name, make, shape, nan_at, must_be_nan):
    _check(make(), shape, nan_at, must_be_nan, nc.get_device("cuda"))


def test_nan_logits_give_a_nan_loss_and_a_nan_prediction():
    logits = np.zeros((2, 3), np.float32)
    logits[0, 1] = np.nan
    crit = nc.losses.CrossEntropyLoss()
    assert np.isnan(crit.forward(logits, np.array([0, 1])))
    model = nc.models.lenet5()
    x = np.zeros((1, 1, 28, 28), np.float32)
    x[0, 0, 14, 14] = np.nan
    assert np.isnan(L.Softmax()(model.eval()(x))).all()
