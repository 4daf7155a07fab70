"""CIFAR-style ResNets (He et al. 2016, section 4.2): three stages of n blocks; BasicBlocks
(depth 6n+2) or Bottleneck blocks (depth 9n+2, e.g. ResNet-29)."""

from .. import init
from ..layers import (
    AdaptiveAvgPool2d,
    BasicBlock,
    BatchNorm2d,
    Bottleneck,
    Conv2d,
    Flatten,
    Linear,
    Module,
    ReLU,
    Sequential,
)

BLOCKS = {"basic": (BasicBlock, 6), "bottleneck": (Bottleneck, 9)}  # block, layers per stage block


class ResNet(Module):
    """conv3x3(width) - BN - ReLU - layer1 (width) - layer2 (2 width, /2) - layer3 (4 width, /2)
    - global average pool - fc. Any input channels and size (>= 4x4 after two stride-2 stages
    works best). Projection shortcuts (1x1 conv + BN) where the shape changes. With
    ``block="bottleneck"`` each stage's blocks reduce to its width with a 1x1, run the 3x3 there
    and expand 4x (so layer3 ends at 16 width channels).
    """

    def __init__(self, depth=20, in_channels=3, num_classes=10, width=16, block="basic"):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"resnet: block must be 'basic' or 'bottleneck', got {block!r}")
        block_class, per_block = BLOCKS[block]
        if depth < per_block + 2 or (depth - 2) % per_block:
            examples = "8, 14, 20, 32, 44, 56" if block == "basic" else "11, 20, 29, 38, 47, 56"
            raise ValueError(
                f"resnet: a {block} ResNet's depth must be {per_block}n+2 with n >= 1 ({examples}, ...), got {depth}"
            )
        n = (depth - 2) // per_block
        self.depth, self.block = depth, block
        self.conv1 = Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = BatchNorm2d(width)
        self.relu = ReLU()
        channels = width
        for stage, (mult, stride) in enumerate(((1, 1), (2, 2), (4, 2)), start=1):
            blocks = []
            for i in range(n):
                blocks.append(block_class(channels, width * mult, stride if i == 0 else 1))
                channels = width * mult * block_class.expansion
            setattr(self, f"layer{stage}", Sequential(*blocks))
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = Linear(channels, num_classes)
        # He initialisation (fan_out, ReLU gain) for convolutions, as in torchvision's ResNet.
        for _, m in self.named_modules():
            if isinstance(m, Conv2d):
                m.weight.data[...] = init.kaiming_normal(m.weight.shape, mode="fan_out")
        # No gradient w.r.t. the images unless asked for (model.requires_input_grad()).
        self.requires_input_grad(False)

    def _layers(self):
        return [
            self.conv1,
            self.bn1,
            self.relu,
            self.layer1,
            self.layer2,
            self.layer3,
            self.avgpool,
            self.flatten,
            self.fc,
        ]

    def first_layer(self):
        return self.conv1

    def forward(self, x):
        for layer in self._layers():
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self._layers()):
            dy = layer.backward(dy)
        return dy

    def output_shape(self, input_shape):
        for layer in self._layers():
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def summary_rows(self, input_shape, prefix=""):
        rows = []
        names = ["conv1", "bn1", "relu", "layer1", "layer2", "layer3", "avgpool", "flatten", "fc"]
        for name, layer in zip(names, self._layers()):
            r, input_shape = layer.summary_rows(input_shape, f"{prefix}.{name}" if prefix else name)
            rows += r
        return rows, input_shape

    def extra_repr(self):
        return f"depth={self.depth}" + (", block='bottleneck'" if self.block == "bottleneck" else "")


def resnet(depth=20, in_channels=3, num_classes=10, width=16, block="basic"):
    """A CIFAR-style ResNet of ``depth`` layers: 6n+2 with BasicBlocks (8, 14, 20, 32, ...) or
    9n+2 with ``block="bottleneck"`` (11, 20, 29, ...)."""
    return ResNet(depth, in_channels, num_classes, width, block)
