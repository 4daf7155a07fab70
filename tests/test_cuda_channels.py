"""kernels/cuda/channels.py against the CPU: PReLU, Maxout, Dropout2d's channel scaling, Concat."""

import pytest

from numbacnn import layers as L

from cuda_parity import assert_layer_parity, needs_cuda

pytestmark = needs_cuda


@pytest.mark.parametrize(
    "layer,shape",
    [
        (lambda: L.PReLU(3), (2, 3, 2, 2)),
        (lambda: L.PReLU(), (2, 3)),
        (lambda: L.Maxout(2), (2, 4, 2, 2)),
        (lambda: L.Dropout2d(0.5), (3, 4, 2, 2)),
        (lambda: L.Concat(L.Conv2d(2, 1, 1), L.MaxPool2d(3, 1, 1)), (1, 2, 3, 3)),
    ],
    ids=["prelu_c", "prelu_1", "maxout", "dropout2d", "concat"],
)
def test_channel_layer_parity(layer, shape, rng, cuda):
    assert_layer_parity(layer(), shape, rng)
