"""Layers that work per channel: PReLU (a learnable slope), Maxout (a max over channel groups) and
Concat (parallel branches joined along the channels, as in Inception)."""

import numpy as np

from .module import Module


class PReLU(Module):
    """PyTorch's PReLU: x where x > 0, else a * x, with a learnable slope ``a``: one shared
    (``num_parameters=1``) or one per channel (``num_parameters=C``), initialised to ``init``.
    Input (N, C, ...) of any rank >= 2. State dict key "weight" of shape (num_parameters,)."""

    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        if not isinstance(num_parameters, (int, np.integer)) or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        self.num_parameters = int(num_parameters)
        self.weight = self._new_parameter(np.full(self.num_parameters, float(init)))
        self._x = None

    def forward(self, x):
        self._check_input(x)
        if x.ndim < 2 or (self.num_parameters != 1 and x.shape[1] != self.num_parameters):
            raise ValueError(
                f"PReLU: expected input (N, {self.num_parameters}, ...) for {self.num_parameters} slopes, "
                f"got shape {tuple(x.shape)}"
            )
        out = self._work("out", x.shape)
        self.device.ops.prelu_forward(out, x, self.weight.data)
        self._x = x
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, x.shape)
        dx = self._work("dx", x.shape) if self.input_grad else None
        self.device.ops.prelu_backward(dx, self._grad_of(self.weight), dy, x, self.weight.data)
        return dx

    def flops(self, input_shape):
        return int(np.prod(input_shape))

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Maxout(Module):
    """Maxout (Goodfellow et al. 2013): the maximum over each group of ``pool_size`` consecutive
    channels, (N, C, ...) -> (N, C / pool_size, ...). Channel g of the output is the max of
    channels g*k .. g*k + k - 1. PyTorch has no Maxout layer; this is the usual definition.
    Backward routes each gradient to its group's winner (ties: the first)."""

    def __init__(self, pool_size):
        super().__init__()
        if not isinstance(pool_size, (int, np.integer)) or pool_size < 1:
            raise ValueError(f"Maxout: pool_size must be a positive int, got {pool_size!r}")
        self.pool_size = int(pool_size)
        self._x = None

    def output_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[1] % self.pool_size:
            raise ValueError(
                f"Maxout: {input_shape[1] if len(input_shape) > 1 else 'no'} channels are not divisible "
                f"into groups of pool_size={self.pool_size}"
            )
        return (input_shape[0], input_shape[1] // self.pool_size) + tuple(input_shape[2:])

    def forward(self, x):
        self._check_input(x)
        shape = self.output_shape(x.shape)
        out = self._work("out", shape)
        self._indices = self._work("indices", shape, np.int32)
        self.device.ops.maxout_forward(out, self._indices, x, self.pool_size)
        self._x = x
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self.output_shape(x.shape))
        dx = self._work("dx", x.shape)
        self.device.ops.maxout_backward(dx, dy, self._indices, self.pool_size)
        return dx

    def flops(self, input_shape):
        return int(np.prod(input_shape))

    def extra_repr(self):
        return f"pool_size={self.pool_size}"


class Concat(Module):
    """Runs every branch on the same input and concatenates their outputs along the channels
    (``torch.cat([b(x) for b in branches], dim=1)``). Branch outputs must agree in every other
    dimension. Backward hands each branch its slice of the gradient and sums the branches' input
    gradients into the shared input's. Children are named "0", "1", ... as in Sequential, so it
    nests in a Sequential and its state-dict keys are "<i>.<branch layer>...".
    """

    def __init__(self, *branches):
        super().__init__()
        if not branches:
            raise ValueError("Concat: needs at least one branch")
        for i, branch in enumerate(branches):
            if not isinstance(branch, Module):
                raise TypeError(f"Concat: branch {i} is a {type(branch).__name__}, not a layer")
            setattr(self, str(i), branch)
        self._x = None

    @property
    def branches(self):
        return list(self._modules.values())

    def output_shape(self, input_shape):
        shapes = [b.output_shape(input_shape) for b in self.branches]
        rest = {tuple(s[:1]) + tuple(s[2:]) for s in shapes}
        if len(rest) != 1:
            raise ValueError(f"Concat: branch outputs {shapes} differ outside the channel dimension")
        first = shapes[0]
        return (first[0], sum(s[1] for s in shapes)) + tuple(first[2:])

    def forward(self, x):
        out = self._work("out", self.output_shape(x.shape))
        offset = 0
        for branch in self.branches:
            y = branch.forward(x)
            self.device.ops.concat_channels_forward(out, y, offset)
            offset += y.shape[1]
        self._x, self._out = x, out
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self._out.shape)
        dx, offset = None, 0
        for i, branch in enumerate(self.branches):
            shape = branch.output_shape(x.shape)
            d_branch = self._work(f"d_branch{i}", shape)
            self.device.ops.concat_channels_backward(d_branch, dy, offset)
            offset += shape[1]
            d_input = branch.backward(d_branch)
            if d_input is None:  # the first layer of the network: no input gradient asked for
                continue
            if dx is None:
                dx = self._work("dx", x.shape)
                self.device.ops.copy(dx, d_input)
            else:
                self.device.ops.add_forward(dx, dx, d_input)
        return dx

    def first_layer(self):
        return self

    # As a network's first layer, whether the input gradient is computed is each branch's choice.
    @property
    def input_grad(self):
        return all(b.first_layer().input_grad for b in self._modules.values())

    @input_grad.setter
    def input_grad(self, enabled):
        for branch in self._modules.values():
            branch.first_layer().input_grad = bool(enabled)

    def summary_rows(self, input_shape, prefix=""):
        rows = []
        for name, branch in self._modules.items():
            r, _ = branch.summary_rows(input_shape, f"{prefix}.{name}" if prefix else name)
            rows += r
        out_shape = self.output_shape(input_shape)
        rows.append((f"{prefix}.concat" if prefix else "concat", "Concat", out_shape, 0, 0))
        return rows, out_shape
