"""kernels/cuda/pad.py against the CPU: Conv2d's padding modes and asymmetric zero padding, done
by pad2d before the convolution."""

import pytest

from numbacnn import layers as L

from cuda_parity import assert_layer_parity, needs_cuda

pytestmark = needs_cuda


@pytest.mark.parametrize(
    "layer,shape",
    [
        (lambda: L.Conv2d(2, 2, 3, padding=(2, 1), padding_mode="reflect"), (1, 2, 3, 4)),
        (lambda: L.Conv2d(2, 2, 3, padding=1, padding_mode="replicate"), (1, 2, 3, 3)),
        (lambda: L.Conv2d(2, 2, 3, padding=2, padding_mode="circular"), (1, 2, 3, 3)),
        (lambda: L.Conv2d(2, 2, 2, padding="same"), (1, 2, 3, 3)),  # asymmetric zeros
    ],
    ids=["pad_reflect", "pad_replicate", "pad_circular", "same_even"],
)
def test_padding_parity(layer, shape, rng, cuda):
    assert_layer_parity(layer(), shape, rng)
