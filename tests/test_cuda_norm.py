"""kernels/cuda/norm.py against the CPU: BatchNorm in training and eval mode, synchronised, fused
with ReLU, and fused with a residual add and ReLU."""

import numpy as np
import pytest

from numbacnn import layers as L

from cuda_parity import assert_layer_parity, needs_cuda

pytestmark = needs_cuda


@pytest.mark.parametrize(
    "layer,shape",
    [
        (lambda: L.BatchNorm2d(3), (2, 3, 3, 4)),
    ],
    ids=["batchnorm"],
)
def test_batchnorm_parity(layer, shape, rng, cuda):
    assert_layer_parity(layer(), shape, rng)


def test_batchnorm_eval_parity(rng, cuda):
    bn = L.BatchNorm2d(3)
    bn.load_state_dict(
        {
            "weight": rng.uniform(0.5, 1.5, 3),
            "bias": rng.standard_normal(3),
            "running_mean": rng.standard_normal(3),
            "running_var": rng.uniform(0.5, 2, 3),
            "num_batches_tracked": np.array(5),
        }
    )
    bn.eval()
    assert_layer_parity(bn, (2, 3, 2, 3), rng)


def test_synced_batchnorm_parity(rng, cuda):
    """The synchronised path (batchnorm2d_moments, batchnorm2d_backward_synced), with a world of
    one rank: what each rank of a data-parallel run computes around its all-reduces."""
    from numbacnn.distributed import World

    bn = L.BatchNorm2d(3)
    bn.process_group = World()
    assert_layer_parity(bn, (2, 3, 2, 3), rng)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_with_fused_relu_parity(training, rng, cuda):
    from test_bn_relu import FusedBatchNormReLU

    layer = FusedBatchNormReLU(3)
    layer.weight.data[...] = rng.uniform(0.5, 1.5, 3)
    layer.bias.data[...] = rng.standard_normal(3) * 0.5
    layer.train(training)
    assert_layer_parity(layer, (2, 3, 2, 3), rng)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_with_fused_add_relu_parity(training, rng, cuda):
    """The residual join (CUDA composes it from its BatchNorm and add_relu kernels)."""
    from test_bn_add_relu import make

    layer = make(3, rng, np.float32)
    layer.train(training)
    assert_layer_parity(layer, (2, 3, 2, 3), rng)
