"""Flatten: (N, C, H, W) -> (N, C*H*W) as a view (no copy, no kernel)."""

import numpy as np

from .module import Module


class Flatten(Module):
    def output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def forward(self, x):
        self._check_input(x)
        if x.ndim < 2:
            raise ValueError(f"Flatten: expected input of shape (N, ...) with rank >= 2, got {tuple(x.shape)}")
        self._x = x
        return x.reshape(self.output_shape(x.shape))

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self.output_shape(x.shape))
        return dy.reshape(x.shape)
