"""kernels/cuda/softmax.py against the CPU."""

import pytest

from numbacnn import layers as L

from cuda_parity import assert_layer_parity, needs_cuda

pytestmark = needs_cuda


@pytest.mark.parametrize(
    "layer,shape",
    [
        (lambda: L.Softmax(), (3, 5)),
    ],
    ids=["softmax"],
)
def test_softmax_parity(layer, shape, rng, cuda):
    assert_layer_parity(layer(), shape, rng)
