"""Layers against PyTorch (when installed), forward and every gradient, in float64: each convolution
entry of the table (pointwise, subsample, direct_positions, direct_channels with strides, dilation, groups and padding
past the kernel), Linear on our GEMM, and a ReLU before max pooling (run inside the pooling)."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn import layers as L

torch = pytest.importorskip("torch")

# (N, C, K, H, W, kernel, stride, padding, dilation, groups): the path each one takes
CONVS = [
    (2, 5, 7, 9, 9, 1, 1, 0, 1, 1),  # pointwise
    (2, 5, 7, 9, 8, 1, 2, 0, 1, 1),  # subsample
    (2, 6, 16, 14, 14, 5, 1, 0, 1, 1),  # direct_positions, LeNet's conv2
    (2, 8, 8, 6, 6, 3, 1, 1, 1, 1),  # direct_channels, small planes
    (2, 16, 32, 9, 9, 3, 2, 1, 1, 1),  # direct_channels, ResNet's downsampling
    (2, 6, 6, 9, 10, 3, (2, 1), 2, 2, 3),  # direct_channels, dilated and grouped
    (1, 4, 4, 7, 7, 3, 1, 3, 1, 4),  # depthwise, padding past the kernel
]


def _compare(ours, theirs, x, grads):
    xt = torch.tensor(x, requires_grad=True)
    want = theirs(xt)
    got = ours(x)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = np.random.default_rng(2).standard_normal(got.shape)
    want.backward(torch.tensor(dy))
    dx = ours.backward(dy)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    for name, param in grads:
        np.testing.assert_allclose(dict(ours.named_parameters())[name].grad, param.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CONVS, ids=str)
def test_conv2d_matches_pytorch(case, rng):
    n, c, k, h, w, kernel, stride, padding, dilation, groups = case
    ours = L.Conv2d(c, k, kernel, stride, padding, dilation, groups).to(np.float64)
    theirs = torch.nn.Conv2d(c, k, kernel, stride, padding, dilation, groups).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
        theirs.bias.copy_(torch.tensor(ours.bias.data))
    _compare(ours, theirs, rng.standard_normal((n, c, h, w)), [("weight", theirs.weight), ("bias", theirs.bias)])


def test_linear_matches_pytorch(rng):
    ours = L.Linear(37, 13).to(np.float64)
    theirs = torch.nn.Linear(37, 13).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
        theirs.bias.copy_(torch.tensor(ours.bias.data))
    _compare(ours, theirs, rng.standard_normal((11, 37)), [("weight", theirs.weight), ("bias", theirs.bias)])


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2)])
def test_relu_then_max_pooling_matches_pytorch(kernel, stride, rng):
    ours = L.Sequential(L.ReLU(), L.MaxPool2d(kernel, stride)).to(np.float64)
    theirs = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.MaxPool2d(kernel, stride))
    x = rng.standard_normal((2, 3, 9, 9))
    x += np.sign(x) * 0.01  # no exact zeros: ReLU's gradient at 0 is a convention
    _compare(ours, theirs, x, [])
    assert ours._relu_pools == [0]


def test_lenet5_step_matches_pytorch(rng):
    """A whole training step's gradients: every LeNet-5 parameter."""
    from test_torch_interop import torch_lenet5

    model = nc.models.lenet5(1, 10).to(np.float64)
    reference = torch_lenet5(1).double()
    reference.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    x = rng.standard_normal((4, 1, 28, 28))
    model.requires_input_grad(True)
    _compare(model, reference, x, list(reference.named_parameters()))
