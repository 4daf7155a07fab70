"""LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, the modern textbook variant."""

from ..kernels.shapes import conv2d_output_size
from ..layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential


def lenet5(in_channels=1, num_classes=10, input_size=28):
    """conv6@5x5 pad2 - ReLU - maxpool2 - conv16@5x5 - ReLU - maxpool2 - fc120 - fc84 - fc classes.

    ``input_size`` (H = W) sets the flattened feature count: 16*5*5 for 28x28, 16*6*6 for 32x32.
    """
    side = conv2d_output_size(input_size, 5, 1, 2) // 2
    side = conv2d_output_size(side, 5, 1, 0) // 2
    if side < 1:
        raise ValueError(f"lenet5: input_size {input_size} is too small (needs >= 12)")
    model = Sequential(
        Conv2d(in_channels, 6, 5, padding=2),
        ReLU(),
        MaxPool2d(2),
        Conv2d(6, 16, 5),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(16 * side * side, 120),
        ReLU(),
        Linear(120, 84),
        ReLU(),
        Linear(84, num_classes),
    )
    # No gradient w.r.t. the images unless asked for (model.requires_input_grad()).
    return model.requires_input_grad(False)
