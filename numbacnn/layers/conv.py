"""Conv2d: PyTorch's arguments, defaults and weight shapes; kernels from ``device.ops``."""

import numpy as np

from .. import init
from ..kernels.shapes import conv2d_output_size
from ..validate import pair
from .module import Module


class Conv2d(Module):
    """2-D convolution. weight (out, in/groups, kh, kw), bias (out,).

    forward: x (N, in_channels, H, W) -> (N, out_channels, OH, OW).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) "
                f"must both be divisible by groups ({groups})"
            )
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.dilation = pair(dilation, "dilation")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError("Conv2d: kernel_size, stride and dilation must be >= 1 and padding >= 0")
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = self._new_parameter(init.kaiming_uniform(shape))
        fan_in = init.fan_in_and_fan_out(shape)[0]
        self.bias = self._new_parameter(init.bias_uniform((out_channels,), fan_in)) if bias else None
        self._x = None

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        oh, ow = (
            conv2d_output_size(s, k, st, p, d)
            for s, k, st, p, d in zip((h, w), self.kernel_size, self.stride, self.padding, self.dilation)
        )
        if oh < 1 or ow < 1:
            raise ValueError(
                f"Conv2d: input of spatial size {h}x{w} is too small for kernel "
                f"{self.kernel_size}, padding {self.padding}, dilation {self.dilation}"
            )
        return (n, self.out_channels, oh, ow)

    def flops(self, input_shape):
        n, k, oh, ow = self.output_shape(input_shape)
        macs = n * k * oh * ow * (self.in_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1]
        return 2 * macs + (n * k * oh * ow if self.bias is not None else 0)

    def forward(self, x):
        self._check_input(x, ndim=4, channels=self.in_channels)
        out = self._work("out", self.output_shape(x.shape))
        self.device.ops.conv2d_forward(
            out,
            x,
            self.weight.data,
            None if self.bias is None else self.bias.data,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
        self._x = x
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self.output_shape(x.shape))
        dx = self._work("dx", x.shape) if self.input_grad else None
        self.device.ops.conv2d_backward(
            dx,
            self._grad_of(self.weight),
            self._grad_of(self.bias),
            dy,
            x,
            self.weight.data,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
        return dx

    def extra_repr(self):
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
