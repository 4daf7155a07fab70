"""Pooling layers: MaxPool2d, AvgPool2d (PyTorch's ceil_mode and count_include_pad) and
AdaptiveAvgPool2d to any output size (global average pooling for 1)."""

import numpy as np

from ..kernels.shapes import pool2d_output_size
from .module import Module
from .validate import pair


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.ceil_mode = bool(ceil_mode)
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
            pool2d_output_size(s, k, st, p, self.ceil_mode)
            for s, k, st, p in zip((h, w), self.kernel_size, self.stride, self.padding)
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
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        return text + (", ceil_mode=True" if self.ceil_mode else "")


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

    def forward_after_relu(self, x):
        """The max pooling of relu(x), computed as relu(max pooling of x): the two are equal
        (a NaN wins both ways), and the ReLU then runs on the pooled output, a quarter of x for
        2x2 windows. Its gradient comes from ``backward_after_relu``."""
        out = self.forward(x)
        self.device.ops.relu_forward(out, out)
        self._after_relu = out
        return out

    def backward_after_relu(self, dy):
        """The gradient of relu(x) -> pooling, w.r.t. x: dy where the pooled output is positive,
        routed to each window's argmax. Where a window's maximum is not positive, ReLU gave its
        whole window a zero gradient, and so does this."""
        if getattr(self, "_after_relu", None) is None:
            raise RuntimeError("MaxPool2d.backward_after_relu: the last forward was not forward_after_relu")
        masked = self._work("d_after_relu", dy.shape)
        self.device.ops.relu_backward(masked, dy, self._after_relu)
        self._after_relu = None
        return self.backward(masked)


class AvgPool2d(_Pool2d):
    """Average pooling. ``count_include_pad`` (default True, as PyTorch) counts the zero padding
    in each window's divisor; False divides by the real pixels only."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def extra_repr(self):
        return super().extra_repr() + ("" if self.count_include_pad else ", count_include_pad=False")

    def forward(self, x):
        self._check_input(x, ndim=4)
        out = self._work("out", self.output_shape(x.shape))
        self.device.ops.avgpool2d_forward(out, x, self.kernel_size, self.stride, self.padding, self.count_include_pad)
        self._x = x
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self.output_shape(x.shape))
        dx = self._work("dx", x.shape)
        self.device.ops.avgpool2d_backward(dx, dy, self.kernel_size, self.stride, self.padding, self.count_include_pad)
        return dx


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (OH, OW), whatever the input size, with PyTorch's
    bins (rows floor(i H / OH) to ceil((i + 1) H / OH)). ``output_size`` 1 is global average
    pooling: (N, C, H, W) -> (N, C, 1, 1). None in a pair keeps that input dimension."""

    def __init__(self, output_size=1):
        super().__init__()
        if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
            sizes = tuple(output_size)
        else:
            sizes = (output_size, output_size)
        if not all(
            s is None or (isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1) for s in sizes
        ):
            raise ValueError(f"AdaptiveAvgPool2d: output_size must be positive ints (or None), got {output_size!r}")
        self.output_size = output_size if isinstance(output_size, int) else tuple(output_size)
        self._sizes = sizes
        self._x = None

    def _out_hw(self, h, w):
        return tuple(s if s is not None else d for s, d in zip(self._sizes, (h, w)))

    def output_shape(self, input_shape):
        return (input_shape[0], input_shape[1]) + self._out_hw(input_shape[2], input_shape[3])

    def flops(self, input_shape):
        return int(np.prod(input_shape))

    def forward(self, x):
        self._check_input(x, ndim=4)
        out = self._work("out", self.output_shape(x.shape))
        if out.shape[2:] == (1, 1):
            self.device.ops.global_avgpool2d_forward(out, x)
        else:
            self.device.ops.adaptive_avgpool2d_forward(out, x)
        self._x = x
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self.output_shape(x.shape))
        dx = self._work("dx", x.shape)
        if dy.shape[2:] == (1, 1):
            self.device.ops.global_avgpool2d_backward(dx, dy)
        else:
            self.device.ops.adaptive_avgpool2d_backward(dx, dy)
        return dx

    def extra_repr(self):
        return f"output_size={self.output_size}"
