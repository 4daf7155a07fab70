"""Output-size formulas shared by both backends and the layers (PyTorch's)."""


def conv2d_output_size(size, kernel, stride, padding, dilation=1):
    """Output length along one axis of a convolution (or pooling when dilation=1)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool2d_output_size(size, kernel, stride, padding, ceil_mode=False):
    """Output length of pooling; ``ceil_mode`` rounds up, keeping only windows that start inside
    the input or its left padding (PyTorch's rule)."""
    if not ceil_mode:
        return conv2d_output_size(size, kernel, stride, padding, 1)
    out = -(-(size + 2 * padding - kernel) // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out
