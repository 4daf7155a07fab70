"""kernels/cuda/conv.py against the CPU: Conv2d forward and every gradient, strides, dilation, groups,
float64, a frozen weight; real sizes on a real GPU."""

import numpy as np
import pytest

from numbacnn import layers as L

from cuda_parity import assert_layer_parity, host, needs_cuda, real_gpu

pytestmark = needs_cuda


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


def test_frozen_weight_parity(rng, cuda):
    """dw=None: the CUDA kernels skip the weight gradient as the CPU ones do."""
    frozen = L.Conv2d(2, 3, 3, padding=1)
    frozen.weight.requires_grad = False
    assert_layer_parity(frozen, (2, 2, 3, 3), rng)
    assert not host(frozen.weight.grad).any()


@pytest.mark.gpu
@real_gpu
@pytest.mark.parametrize("cin,cout,hw,stride", [(16, 32, 32, 1), (64, 64, 8, 1), (32, 64, 16, 2)])
def test_conv2d_parity_real_sizes(cin, cout, hw, stride, rng, cuda):
    assert_layer_parity(L.Conv2d(cin, cout, 3, stride=stride, padding=1), (32, cin, hw, hw), rng, rtol=1e-3, atol=1e-3)
