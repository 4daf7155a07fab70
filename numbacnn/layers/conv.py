"""Conv2d: PyTorch's arguments, defaults and weight shapes; kernels from ``device.ops``."""

import numpy as np

from .. import init
from ..kernels import shared_math
from ..kernels.conv_padding import explicit_padding, report_explicit_padding
from ..kernels.shapes import conv2d_output_size
from .module import Module
from .validate import pair

PADDING_MODES = {
    "zeros": shared_math.PAD_ZEROS,
    "reflect": shared_math.PAD_REFLECT,
    "replicate": shared_math.PAD_REPLICATE,
    "circular": shared_math.PAD_CIRCULAR,
}


class Conv2d(Module):
    """2-D convolution. weight (out, in/groups, kh, kw), bias (out,).

    forward: x (N, in_channels, H, W) -> (N, out_channels, OH, OW).

    ``padding``: an int, a pair, "valid" (none) or "same" (output size = input size; stride 1;
    an even kernel puts the extra row and column at the bottom and right, as PyTorch).
    ``padding_mode``: "zeros", "reflect" (mirror, edge not repeated), "replicate" (nearest edge
    pixel) or "circular" (wrap around). Anything but symmetric zero padding is done by an
    explicit pad kernel before the convolution; its backward routes each padded pixel's gradient
    back to the pixel it copies.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
    ):
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
        self.dilation = pair(dilation, "dilation")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding")
        self._pads = self._resolve_padding(padding)  # (top, bottom, left, right)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.dilation) < 1 or min(self._pads) < 0:
            raise ValueError("Conv2d: kernel_size, stride and dilation must be >= 1 and padding >= 0")
        top, bottom, left, right = self._pads
        # Symmetric zero padding goes to the convolution kernel itself; anything else is padded first.
        self._explicit = explicit_padding(padding_mode, self._pads)
        self._conv_padding = (0, 0) if self._explicit else (top, left)
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = self._new_parameter(init.kaiming_uniform(shape))
        fan_in = init.fan_in_and_fan_out(shape)[0]
        self.bias = self._new_parameter(init.bias_uniform((out_channels,), fan_in)) if bias else None
        self._x = None

    def _resolve_padding(self, padding):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if self.stride != (1, 1):
                raise ValueError("Conv2d: padding='same' needs stride 1 (as in PyTorch)")
            total_h, total_w = (d * (k - 1) for d, k in zip(self.dilation, self.kernel_size))
            return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
        if isinstance(padding, str):
            raise ValueError(f"Conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        ph, pw = pair(padding, "padding")
        return (ph, ph, pw, pw)

    def _padded_size(self, h, w):
        top, bottom, left, right = self._pads
        return h + top + bottom, w + left + right

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        hp, wp = self._padded_size(h, w)
        oh, ow = (
            conv2d_output_size(s, k, st, 0, d)
            for s, k, st, d in zip((hp, wp), self.kernel_size, self.stride, self.dilation)
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
        self._x = x
        if self._explicit:
            report_explicit_padding(self._explicit, x.shape[1:], self.weight.shape)
            x = self._pad(x)
        self.device.ops.conv2d_forward(
            out,
            x,
            self.weight.data,
            None if self.bias is None else self.bias.data,
            self.stride,
            self._conv_padding,
            self.dilation,
            self.groups,
        )
        self._conv_input = x
        return out

    def _pad(self, x):
        top, bottom, left, right = self._pads
        h, w = x.shape[2], x.shape[3]
        limit = {"reflect": (h - 1, w - 1), "circular": (h, w)}.get(self.padding_mode)
        if limit and (max(top, bottom) > limit[0] or max(left, right) > limit[1]):
            raise ValueError(
                f"Conv2d: padding {self._pads} (top, bottom, left, right) is too large for {self.padding_mode} "
                f"padding of a {h}x{w} input"
            )
        padded = self._work("padded", (x.shape[0], x.shape[1]) + self._padded_size(h, w))
        self.device.ops.pad2d_forward(padded, x, top, left, PADDING_MODES[self.padding_mode])
        return padded

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self.output_shape(x.shape))
        conv_input = self._conv_input
        dx = self._work("dx", x.shape) if self.input_grad else None
        d_conv_input = self._work("d_padded", conv_input.shape) if self._explicit and self.input_grad else dx
        self.device.ops.conv2d_backward(
            d_conv_input,
            self._grad_of(self.weight),
            self._grad_of(self.bias),
            dy,
            conv_input,
            self.weight.data,
            self.stride,
            self._conv_padding,
            self.dilation,
            self.groups,
        )
        if self._explicit and dx is not None:
            self.device.ops.pad2d_backward(
                dx, d_conv_input, self._pads[0], self._pads[2], PADDING_MODES[self.padding_mode]
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
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s
