"""BatchNorm2d with PyTorch's parameters, buffers and momentum convention."""

import numpy as np

from .module import Module


class BatchNorm2d(Module):
    """Per-channel normalisation of x (N, C, H, W).

    Training: batch statistics, running averages updated with ``momentum`` (new = (1-m) old + m
    batch; unbiased variance). Eval: running statistics. State: weight, bias, running_mean,
    running_var, num_batches_tracked.

    ``process_group`` (a ``distributed.World``, set by ``distributed.sync_batchnorm``) makes the
    training statistics span every rank's images, as PyTorch's SyncBatchNorm: per-channel sums
    are all-reduced in forward and in backward.
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
        self.process_group = None
        self._x = self._relu_out = None
        self._added = False

    def flops(self, input_shape):
        return 2 * int(np.prod(input_shape))

    def forward(self, x):
        return self._forward(x, relu=False)

    def forward_relu(self, x):
        """relu(self.forward(x)), the ReLU fused into the normalisation's pass where the kernels
        allow (not with synchronised statistics). The output is this layer's buffer; take the
        gradient with ``backward_relu``."""
        return self._forward(x, relu=True)

    def forward_add_relu(self, x, residual):
        """relu(self.forward(x) + residual), residual of x's shape (a residual block's shortcut),
        in the normalisation's pass where the kernels allow (not with synchronised statistics). The
        output is this layer's buffer; take the gradients with ``backward_add_relu``."""
        return self._forward(x, relu=True, residual=residual)

    def _forward(self, x, relu, residual=None):
        self._check_input(x, ndim=4, channels=self.num_features)
        if residual is not None:
            self._check_input(residual, ndim=4, channels=self.num_features)
            if tuple(residual.shape) != tuple(x.shape):
                raise ValueError(
                    f"BatchNorm2d.forward_add_relu: residual must have x's shape {tuple(x.shape)}, got "
                    f"{tuple(residual.shape)}"
                )
        out = self._work("out", x.shape)
        mean = self._work("save_mean", (self.num_features,))
        invstd = self._work("save_invstd", (self.num_features,))
        ops = self.device.ops
        added = residual is not None
        if self.training and self.process_group is not None:
            self._forward_synced(out, mean, invstd, x)
            if added:
                ops.add_relu_forward(out, out, residual)
            elif relu:
                ops.relu_forward(out, out)
        elif self.training:
            _check_count(x.shape[0] * x.shape[2] * x.shape[3], x.shape)
            running = (self.running_mean, self.running_var)
            params = (self.weight.data, self.bias.data, self.eps, self.momentum)
            if added:
                ops.batchnorm2d_add_relu_forward_train(out, mean, invstd, *running, x, residual, *params)
            else:
                kernel = ops.batchnorm2d_relu_forward_train if relu else ops.batchnorm2d_forward_train
                kernel(out, mean, invstd, *running, x, *params)
            self.num_batches_tracked += 1
        else:
            args = (self.weight.data, self.bias.data, self.running_mean, self.running_var, self.eps)
            if added:
                ops.batchnorm2d_add_relu_forward_eval(out, mean, invstd, x, residual, *args)
            else:
                kernel = ops.batchnorm2d_relu_forward_eval if relu else ops.batchnorm2d_forward_eval
                kernel(out, mean, invstd, x, *args)
        self._x, self._trained_forward = x, self.training
        self._relu_out = out if relu else None
        self._added = added
        return out

    def _all_reduced_moments(self, name, a, b):
        """(local sums (2, C) on the device, the sums over every rank (2, C) host float64, the
        values per channel over every rank)."""
        local = self._work(name, (2, self.num_features), np.float64)
        self.device.ops.batchnorm2d_moments(local, a, b)
        count = a.shape[0] * a.shape[2] * a.shape[3]
        # One all-reduce carries both sums and the count (ranks may hold different batch sizes).
        flat = np.append(np.asarray(self.device.to_host(local), np.float64).ravel(), count)
        self.process_group.allreduce_sum(flat)
        return local, flat[:-1].reshape(2, self.num_features), float(flat[-1])

    def _forward_synced(self, out, save_mean, save_invstd, x):
        """Training forward with statistics over every rank: normalise with the global mean and
        (biased) variance, update the running averages with them (unbiased variance)."""
        _, sums, count = self._all_reduced_moments("moments", x, x)
        _check_count(count, x.shape)
        mean = sums[0] / count
        var = np.maximum(sums[1] / count - mean * mean, 0.0)
        device, m = self.device, self.momentum
        running_mean = (1.0 - m) * device.to_host(self.running_mean) + m * mean
        running_var = (1.0 - m) * device.to_host(self.running_var) + m * var * count / (count - 1)
        device.asarray(running_mean.astype(self.dtype), out=self.running_mean)
        device.asarray(running_var.astype(self.dtype), out=self.running_var)
        batch_mean = device.asarray(mean.astype(self.dtype), out=self._work("sync_mean", mean.shape))
        batch_var = device.asarray(var.astype(self.dtype), out=self._work("sync_var", var.shape))
        # Normalising with given statistics is what eval mode does (it saves mean and 1/std too).
        device.ops.batchnorm2d_forward_eval(
            out, save_mean, save_invstd, x, self.weight.data, self.bias.data, batch_mean, batch_var, self.eps
        )
        self.num_batches_tracked += 1

    def backward(self, dy):
        if self._relu_out is not None:
            fused = "add_relu" if self._added else "relu"
            raise RuntimeError(
                f"BatchNorm2d.backward: the last forward was forward_{fused}: take its gradients with backward_{fused}"
            )
        return self._backward(dy, relu_out=None)

    def backward_relu(self, dy):
        """The input gradient of ``forward_relu`` from dy, the gradient of its output."""
        if self._relu_out is None or self._added:
            raise RuntimeError("BatchNorm2d.backward_relu: the last forward was not forward_relu")
        return self._backward(dy, relu_out=self._relu_out)

    def backward_add_relu(self, dy):
        """(dx, dresidual): the gradients of ``forward_add_relu``'s two inputs from dy, the
        gradient of its output (both are this layer's buffers)."""
        if self._relu_out is None or not self._added:
            raise RuntimeError("BatchNorm2d.backward_add_relu: the last forward was not forward_add_relu")
        passed = self._work("dresidual", dy.shape)
        return self._backward(dy, relu_out=self._relu_out, passed=passed), passed

    def _backward(self, dy, relu_out, passed=None):
        x = self._saved()
        self._check_grad(dy, x.shape)
        dx = self._work("dx", x.shape)
        ops = self.device.ops
        save_mean, save_invstd = self._work_buffers["save_mean"], self._work_buffers["save_invstd"]
        # Frozen weight or bias: their sums come with dx at no extra cost, into a scratch sink.
        dweight = self._grad_of(self.weight)
        dweight = self._work("frozen_dweight", (self.num_features,)) if dweight is None else dweight
        dbias = self._grad_of(self.bias)
        dbias = self._work("frozen_dbias", (self.num_features,)) if dbias is None else dbias
        if self._trained_forward and self.process_group is not None:
            if relu_out is not None:
                masked = self._work("relu_dy", dy.shape) if passed is None else passed
                ops.relu_backward(masked, dy, relu_out)
                dy = masked
            local, sums, count = self._all_reduced_moments("grad_moments", dy, x)
            global_sums = self.device.asarray(sums, out=self._work("grad_moments_all", sums.shape, np.float64))
            ops.batchnorm2d_backward_synced(
                dx, dweight, dbias, dy, x, self.weight.data, save_mean, save_invstd, local, global_sums, count
            )
            return dx
        args = (self.weight.data, save_mean, save_invstd, self._trained_forward)
        if relu_out is None:
            ops.batchnorm2d_backward(dx, dweight, dbias, dy, x, *args)
        elif passed is None:
            ops.batchnorm2d_relu_backward(dx, dweight, dbias, dy, relu_out, x, *args)
        else:
            ops.batchnorm2d_add_relu_backward(dx, passed, dweight, dbias, dy, relu_out, x, *args)
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


def _check_count(count, shape):
    if count < 2:
        raise ValueError(
            f"BatchNorm2d: training needs more than one value per channel, got "
            f"input shape {tuple(shape)}; use a larger batch or .eval()"
        )
