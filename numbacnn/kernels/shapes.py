"""Output-size formulas shared by both backends and the layers (PyTorch's, floor mode)."""


def conv2d_output_size(size, kernel, stride, padding, dilation=1):
    """Output length along one axis of a convolution (or pooling when dilation=1)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool2d_output_size(size, kernel, stride, padding):
    return conv2d_output_size(size, kernel, stride, padding, 1)
