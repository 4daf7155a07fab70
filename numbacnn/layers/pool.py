"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1) (global average pooling)."""

import numpy as np

from ..kernels.shapes import pool2d_output_size
from ..validate import pair
from .module import Module


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride if stride is not None else kernel_size, "stride")
        self.padding = pair(padding, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{type(self).__name__}: kernel_size and stride must be >= 1, padding >= 0")
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(
                f"{type(self).__name__}: padding {self.padding} must be at most half the kernel size {self.kernel_size}"
            )
        self._x = None

    def output_shape(self, input_shape):
        n, c, h, w = input_shape
        oh, ow = (
            pool2d_output_size(s, k, st, p) for s, k, st, p in zip((h, w), self.kernel_size, self.stride, self.padding)
        )
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{type(self).__name__}: input of spatial size {h}x{w} is smaller than the window {self.kernel_size}"
            )
        return (n, c, oh, ow)

    def flops(self, input_shape):
        n, c, oh, ow = self.output_shape(input_shape)
        return n * c * oh * ow * self.kernel_size[0] * self.kernel_size[1]

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling; backward routes each gradient to its window's argmax."""

    def forward(self, x):
        self._check_input(x, ndim=4)
        shape = self.output_shape(x.shape)
        out = self._work("out", shape)
        self._indices = self._work("indices", shape, np.int32)
        self.device.ops.maxpool2d_forward(out, self._indices, x, self.kernel_size, self.stride, self.padding)
        self._x = x
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self.output_shape(x.shape))
        dx = self._work("dx", x.shape)
        self.device.ops.maxpool2d_backward(dx, dy, self._indices, self.kernel_size, self.stride, self.padding)
        return dx


class AvgPool2d(_Pool2d):
    """Average pooling; padding counts as zeros in the mean (PyTorch's count_include_pad=True)."""

    def forward(self, x):
        self._check_input(x, ndim=4)
        out = self._work("out", self.output_shape(x.shape))
        self.device.ops.avgpool2d_forward(out, x, self.kernel_size, self.stride, self.padding)
        self._x = x
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self.output_shape(x.shape))
        dx = self._work("dx", x.shape)
        self.device.ops.avgpool2d_backward(dx, dy, self.kernel_size, self.stride, self.padding)
        return dx


class AdaptiveAvgPool2d(Module):
    """Global average pooling: (N, C, H, W) -> (N, C, 1, 1). Only output_size=1 is supported."""

    def __init__(self, output_size=1):
        super().__init__()
        if output_size not in (1, (1, 1), [1, 1]):
            raise ValueError(f"AdaptiveAvgPool2d supports output_size=1 (global pooling) only, got {output_size!r}")
        self.output_size = 1
        self._x = None

    def output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], 1, 1)

    def flops(self, input_shape):
        return int(np.prod(input_shape))

    def forward(self, x):
        self._check_input(x, ndim=4)
        out = self._work("out", self.output_shape(x.shape))
        self.device.ops.global_avgpool2d_forward(out, x)
        self._x = x
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self.output_shape(x.shape))
        dx = self._work("dx", x.shape)
        self.device.ops.global_avgpool2d_backward(dx, dy)
        return dx

    def extra_repr(self):
        return "output_size=1"
