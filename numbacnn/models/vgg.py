"""A VGG-style network (Simonyan & Zisserman 2015) sized for 28x28 and 32x32 images: stages of 3x3
convolutions with max pooling between, then a dropout MLP classifier. Keys as torchvision's VGG
(features.N, classifier.N)."""

from collections import OrderedDict

from ..layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential

# VGG-11's eight 3x3 convolutions ("A" in the paper), channels as multiples of ``width``; "M" is a
# 2x2 max pool. Four pools instead of five: 28 -> 14 -> 7 -> 3 -> 1.
VGG11 = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8)


def vgg11_small(in_channels=1, num_classes=10, input_size=28, width=16, batch_norm=True, hidden=256, dropout=0.5):
    """features (VGG-11's convolutions at ``width`` base channels, BatchNorm after each when
    ``batch_norm``) - global average pool - Linear(hidden) - ReLU - Dropout - Linear(hidden) -
    ReLU - Dropout - Linear(num_classes)."""
    if input_size < 16:
        raise ValueError(f"vgg11_small: input_size {input_size} is too small (needs >= 16 for four poolings)")
    layers, channels = [], in_channels
    for item in VGG11:
        if item == "M":
            layers.append(MaxPool2d(2))
            continue
        out = item * width
        layers.append(Conv2d(channels, out, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(BatchNorm2d(out))
        layers.append(ReLU())
        channels = out
    model = Sequential(
        OrderedDict(
            features=Sequential(*layers),
            avgpool=AdaptiveAvgPool2d(1),
            flatten=Flatten(),
            classifier=Sequential(
                Linear(channels, hidden),
                ReLU(),
                Dropout(dropout),
                Linear(hidden, hidden),
                ReLU(),
                Dropout(dropout),
                Linear(hidden, num_classes),
            ),
        )
    )
    return model.requires_input_grad(False)
