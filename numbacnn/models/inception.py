"""An Inception-style network (Szegedy et al. 2015, GoogLeNet) sized for 28x28 and 32x32 images:
Inception modules run 1x1, 3x3 and 5x5 convolutions (the larger ones behind 1x1 reductions) and a
3x3 max pool (behind a 1x1 projection) side by side, and concatenate them along the channels."""

from collections import OrderedDict

from ..layers import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Concat,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
)


def conv_bn_relu(in_channels, out_channels, kernel_size):
    """Conv (no bias, "same" size) - BatchNorm - ReLU: the unit every branch is built of."""
    return Sequential(
        Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        BatchNorm2d(out_channels),
        ReLU(),
    )


def inception_module(in_channels, c1, c3_reduce, c3, c5_reduce, c5, pool_proj):
    """Concat of four branches: 1x1 (c1); 1x1 (c3_reduce) - 3x3 (c3); 1x1 (c5_reduce) - 5x5 (c5);
    3x3/1 max pool - 1x1 (pool_proj). Output channels c1 + c3 + c5 + pool_proj, same size."""
    return Concat(
        conv_bn_relu(in_channels, c1, 1),
        Sequential(conv_bn_relu(in_channels, c3_reduce, 1), conv_bn_relu(c3_reduce, c3, 3)),
        Sequential(conv_bn_relu(in_channels, c5_reduce, 1), conv_bn_relu(c5_reduce, c5, 5)),
        Sequential(MaxPool2d(3, stride=1, padding=1), conv_bn_relu(in_channels, pool_proj, 1)),
    )


def inception_small(in_channels=1, num_classes=10, input_size=28, dropout=0.2):
    """stem conv3x3(32) - inception3a (64) - inception3b (96) - pool3/2 - inception4a (128) -
    pool3/2 - inception5a (160) - global average pool - Dropout - Linear."""
    if input_size < 8:
        raise ValueError(f"inception_small: input_size {input_size} is too small (needs >= 8)")
    model = Sequential(
        OrderedDict(
            stem=conv_bn_relu(in_channels, 32, 3),
            inception3a=inception_module(32, 16, 16, 24, 4, 8, 16),  # 64 channels
            inception3b=inception_module(64, 24, 24, 40, 8, 16, 16),  # 96
            maxpool3=MaxPool2d(3, stride=2, padding=1),  # 28 -> 14
            inception4a=inception_module(96, 40, 32, 56, 8, 16, 16),  # 128
            maxpool4=MaxPool2d(3, stride=2, padding=1),  # 14 -> 7
            inception5a=inception_module(128, 48, 40, 72, 8, 24, 16),  # 160
            avgpool=AdaptiveAvgPool2d(1),
            flatten=Flatten(),
            dropout=Dropout(dropout),
            fc=Linear(160, num_classes),
        )
    )
    return model.requires_input_grad(False)
