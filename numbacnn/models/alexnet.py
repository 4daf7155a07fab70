"""An AlexNet-style network (Krizhevsky et al. 2012) sized for 28x28 and 32x32 images: a large
first kernel with a stride, overlapping 3x3/2 max pooling, five convolutions, ReLU, no
normalisation, and dropout in the classifier. Keys as torchvision's AlexNet (features.0, .3, .6,
.8, .10; classifier.1, .4, .6)."""

from collections import OrderedDict

from .. import init
from ..layers import AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential


def alexnet_small(in_channels=1, num_classes=10, input_size=28, width=32, hidden=256, dropout=0.5):
    """conv7x7/2 - pool3/2 - conv5x5 - pool3/2 - conv3x3 x3 - pool3/2 (padded) - global average
    pool - Dropout - Linear(hidden) - ReLU - Dropout - Linear(hidden) - ReLU - Linear."""
    if input_size < 20:
        raise ValueError(f"alexnet_small: input_size {input_size} is too small (needs >= 20)")
    c1, c2, c3 = width, 2 * width, 3 * width
    features = Sequential(
        Conv2d(in_channels, c1, 7, stride=2, padding=3),  # 28 -> 14
        ReLU(),
        MaxPool2d(3, stride=2),  # overlapping: 14 -> 6
        Conv2d(c1, c2, 5, padding=2),
        ReLU(),
        MaxPool2d(3, stride=2),  # 6 -> 2
        Conv2d(c2, c3, 3, padding=1),
        ReLU(),
        Conv2d(c3, c3, 3, padding=1),
        ReLU(),
        Conv2d(c3, c2, 3, padding=1),
        ReLU(),
        MaxPool2d(3, stride=2, padding=1),  # 2 -> 1
    )
    # He initialisation (fan_in, ReLU gain): with PyTorch's default scale a plain stack of eight
    # ReLU layers starts with vanishing signals and its first epoch learns nothing.
    for _, m in features.named_modules():
        if isinstance(m, Conv2d):
            m.weight.data[...] = init.kaiming_normal(m.weight.shape, mode="fan_in")
            m.bias.data[...] = 0
    model = Sequential(
        OrderedDict(
            features=features,
            avgpool=AdaptiveAvgPool2d(1),
            flatten=Flatten(),
            classifier=Sequential(
                Dropout(dropout),
                Linear(c2, hidden),
                ReLU(),
                Dropout(dropout),
                Linear(hidden, hidden),
                ReLU(),
                Linear(hidden, num_classes),
            ),
        )
    )
    return model.requires_input_grad(False)
