"""Linear: y = x W^T + b with PyTorch's weight shape (out_features, in_features)."""

import numpy as np

from .. import init
from .module import Module


class Linear(Module):
    """forward: x (N, in_features) -> (N, out_features)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        shape = (out_features, in_features)
        self.weight = self._new_parameter(init.kaiming_uniform(shape))
        self.bias = self._new_parameter(init.bias_uniform((out_features,), in_features)) if bias else None
        self._x = None

    def output_shape(self, input_shape):
        return (input_shape[0], self.out_features)

    def with_outputs(self, num_outputs):
        """A freshly initialised Linear like this one with ``num_outputs`` outputs (on the same
        device and dtype): what ``Module.reset_classifier`` puts in this layer's place."""
        head = Linear(self.in_features, int(num_outputs), bias=self.bias is not None)
        head = head.to(self.dtype).to(self.device)
        head.input_grad = self.input_grad
        return head

    def flops(self, input_shape):
        n = input_shape[0]
        return 2 * n * self.in_features * self.out_features + (n * self.out_features if self.bias is not None else 0)

    def forward(self, x):
        self._check_input(x, ndim=2, features=self.in_features)
        out = self._work("out", self.output_shape(x.shape))
        self.device.ops.linear_forward(out, x, self.weight.data, None if self.bias is None else self.bias.data)
        self._x = x
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self.output_shape(x.shape))
        dx = self._work("dx", x.shape) if self.input_grad else None
        self.device.ops.linear_backward(
            dx, self._grad_of(self.weight), self._grad_of(self.bias), dy, x, self.weight.data
        )
        return dx

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
