"""BatchNorm2d with PyTorch's parameters, buffers and momentum convention."""

import numpy as np

from .module import Module


class BatchNorm2d(Module):
    """Per-channel normalisation of x (N, C, H, W).

    Training: batch statistics, running averages updated with ``momentum`` (new = (1-m) old + m
    batch; unbiased variance). Eval: running statistics. State: weight, bias, running_mean,
    running_var, num_batches_tracked.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"BatchNorm2d: num_features must be a positive int, got {num_features!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.weight = self._new_parameter(np.ones(num_features))
        self.bias = self._new_parameter(np.zeros(num_features))
        self.register_buffer("running_mean", self.device.zeros((num_features,), self.dtype))
        self.register_buffer("running_var", self.device.asarray(np.ones(num_features, self.dtype)))
        # An integer buffer stays on the host on every device (see Module._move).
        self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        self._x = None

    def flops(self, input_shape):
        return 2 * int(np.prod(input_shape))

    def forward(self, x):
        self._check_input(x, ndim=4, channels=self.num_features)
        out = self._work("out", x.shape)
        mean = self._work("save_mean", (self.num_features,))
        invstd = self._work("save_invstd", (self.num_features,))
        ops = self.device.ops
        if self.training:
            if x.shape[0] * x.shape[2] * x.shape[3] < 2:
                raise ValueError(
                    f"BatchNorm2d: training needs more than one value per channel, got "
                    f"input shape {tuple(x.shape)}; use a larger batch or .eval()"
                )
            ops.batchnorm2d_forward_train(
                out,
                mean,
                invstd,
                self.running_mean,
                self.running_var,
                x,
                self.weight.data,
                self.bias.data,
                self.eps,
                self.momentum,
            )
            self.num_batches_tracked += 1
        else:
            ops.batchnorm2d_forward_eval(
                out, mean, invstd, x, self.weight.data, self.bias.data, self.running_mean, self.running_var, self.eps
            )
        self._x, self._trained_forward = x, self.training
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, x.shape)
        dx = self._work("dx", x.shape)
        self.device.ops.batchnorm2d_backward(
            dx,
            self.weight.grad,
            self.bias.grad,
            dy,
            x,
            self.weight.data,
            self._work_buffers["save_mean"],
            self._work_buffers["save_invstd"],
            self._trained_forward,
        )
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
