"""kernels/cuda/pool.py against the CPU: max and average pooling (overlapping windows, padding,
ceil_mode, count_include_pad), global and adaptive average pooling."""

import pytest

from numbacnn import layers as L

from cuda_parity import assert_layer_parity, needs_cuda

pytestmark = needs_cuda


@pytest.mark.parametrize(
    "layer,shape",
    [
        (lambda: L.MaxPool2d(2), (2, 3, 4, 6)),
        (lambda: L.MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 5)),  # overlapping windows
        (lambda: L.AvgPool2d(2), (2, 2, 4, 4)),
        (lambda: L.AvgPool2d(3, stride=2, padding=1), (2, 2, 5, 6)),
        (lambda: L.AdaptiveAvgPool2d(1), (3, 2, 3, 4)),
        (lambda: L.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 4, 5)),
        (lambda: L.MaxPool2d(2, ceil_mode=True), (1, 2, 3, 5)),
        (lambda: L.AdaptiveAvgPool2d((2, 3)), (1, 2, 3, 4)),
    ],
    ids=[
        "maxpool2",
        "maxpool3s2p1",
        "avgpool2",
        "avgpool3s2p1",
        "global_avg",
        "avgpool_ceil_nopad",
        "maxpool_ceil",
        "adaptive_avg",
    ],
)
def test_pool_parity(layer, shape, rng, cuda):
    assert_layer_parity(layer(), shape, rng)
