"""kernels/cuda/linear.py against the CPU: Linear with and without bias, and a frozen weight."""

import pytest

from numbacnn import layers as L

from cuda_parity import assert_layer_parity, host, needs_cuda

pytestmark = needs_cuda


@pytest.mark.parametrize(
    "layer,shape",
    [
        (lambda: L.Linear(7, 5), (3, 7)),
        (lambda: L.Linear(4, 3, bias=False), (2, 4)),
    ],
    ids=["linear", "linear_nobias"],
)
def test_linear_parity(layer, shape, rng, cuda):
    assert_layer_parity(layer(), shape, rng)


def test_frozen_weight_parity(rng, cuda):
    """dw=None: the CUDA kernels skip the weight gradient as the CPU ones do."""
    frozen = L.Linear(3, 2)
    frozen.weight.requires_grad = False
    assert_layer_parity(frozen, (2, 3), rng)
    assert not host(frozen.weight.grad).any()
