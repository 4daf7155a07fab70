"""Activations: ReLU, LeakyReLU, ELU, Sigmoid, Tanh (any input rank; output has x's shape) and
Softmax over the classes of (N, K) logits."""

import numpy as np

from .module import Module


class _Activation(Module):
    """Subclasses call kernels in ``_fwd(out, x)`` and ``_bwd(dx, dy, x, y)``; ``input_ndim``
    fixes the input rank where the op needs one."""

    input_ndim = None

    def forward(self, x):
        self._check_input(x, ndim=self.input_ndim)
        out = self._work("out", x.shape)
        self._fwd(out, x)
        self._x, self._y = x, out
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, x.shape)
        dx = self._work("dx", x.shape)
        self._bwd(dx, dy, x, self._y)
        return dx

    def flops(self, input_shape):
        return int(np.prod(input_shape))


class ReLU(_Activation):
    def _fwd(self, out, x):
        self.device.ops.relu_forward(out, x)

    def _bwd(self, dx, dy, x, y):
        self.device.ops.relu_backward(dx, dy, y)


class LeakyReLU(_Activation):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def _fwd(self, out, x):
        self.device.ops.leaky_relu_forward(out, x, self.negative_slope)

    def _bwd(self, dx, dy, x, y):
        self.device.ops.leaky_relu_backward(dx, dy, x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(_Activation):
    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = float(alpha)

    def _fwd(self, out, x):
        self.device.ops.elu_forward(out, x, self.alpha)

    def _bwd(self, dx, dy, x, y):
        self.device.ops.elu_backward(dx, dy, x, y, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Sigmoid(_Activation):
    def _fwd(self, out, x):
        self.device.ops.sigmoid_forward(out, x)

    def _bwd(self, dx, dy, x, y):
        self.device.ops.sigmoid_backward(dx, dy, y)


class Tanh(_Activation):
    def _fwd(self, out, x):
        self.device.ops.tanh_forward(out, x)

    def _bwd(self, dx, dy, x, y):
        self.device.ops.tanh_backward(dx, dy, y)


class Softmax(_Activation):
    """softmax over the classes of x (N, K), as PyTorch's ``Softmax(dim=1)``: probabilities from
    logits at inference. Train with ``CrossEntropyLoss`` on the logits instead (fused, stabler)."""

    input_ndim = 2

    def __init__(self, dim=1):
        super().__init__()
        if dim not in (1, -1):
            raise ValueError(f"Softmax: only dim=1 (the class axis of (N, K) logits) is supported, got {dim!r}")
        self.dim = 1

    def _fwd(self, out, x):
        self.device.ops.softmax_forward(out, x)

    def _bwd(self, dx, dy, x, y):
        self.device.ops.softmax_backward(dx, dy, y)

    def flops(self, input_shape):
        return 3 * int(np.prod(input_shape))

    def extra_repr(self):
        return f"dim={self.dim}"
