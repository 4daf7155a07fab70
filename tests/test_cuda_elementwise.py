"""kernels/cuda/elementwise.py against the CPU: activations, dropout (the same mask), flatten."""

import pytest

from numbacnn import layers as L

from cuda_parity import assert_layer_parity, needs_cuda

pytestmark = needs_cuda


@pytest.mark.parametrize(
    "layer,shape",
    [
        (lambda: L.ReLU(), (2, 3, 5)),
        (lambda: L.LeakyReLU(0.1), (2, 3, 5)),
        (lambda: L.ELU(0.7), (2, 3, 5)),
        (lambda: L.Sigmoid(), (2, 3, 5)),
        (lambda: L.Tanh(), (2, 3, 5)),
        (lambda: L.Dropout(0.3), (4, 25)),
        (lambda: L.Flatten(), (2, 3, 2, 2)),
    ],
    ids=["relu", "leaky_relu", "elu", "sigmoid", "tanh", "dropout", "flatten"],
)
def test_elementwise_parity(layer, shape, rng, cuda):
    assert_layer_parity(layer(), shape, rng)
