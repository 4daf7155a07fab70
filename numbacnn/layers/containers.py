"""Containers: Sequential and the ResNet BasicBlock."""

from .conv import Conv2d
from .module import Module
from .norm import BatchNorm2d


class Sequential(Module):
    """Layers applied in order; children are named "0", "1", ... as in PyTorch."""

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, not a layer")
            setattr(self, str(i), layer)
        if layers:
            object.__setattr__(self, "device", layers[0].device)
            object.__setattr__(self, "dtype", layers[0].dtype)

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def __iter__(self):
        return iter(self._modules.values())

    def first_layer(self):
        return self[0].first_layer() if len(self) else self

    def forward(self, x):
        for layer in self._modules.values():
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self._modules.values()):
            dy = layer.backward(dy)
        return dy

    def output_shape(self, input_shape):
        for layer in self._modules.values():
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def summary_rows(self, input_shape, prefix=""):
        rows = []
        for name, layer in self._modules.items():
            child_rows, input_shape = layer.summary_rows(input_shape, f"{prefix}.{name}" if prefix else name)
            rows += child_rows
        return rows, input_shape


class BasicBlock(Module):
    """ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    conv1 is 3x3 with ``stride``; the shortcut is the identity, or a 1x1 convolution + BatchNorm
    ("projection") when the stride or the channel count changes. Keys: conv1, bn1, conv2, bn2,
    shortcut.0, shortcut.1.
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = Sequential(
                Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), BatchNorm2d(out_channels)
            )
        else:
            self.shortcut = None
        self._x = None

    def forward(self, x):
        self._check_input(x, ndim=4, channels=self.in_channels)
        ops = self.device.ops
        h = self.bn1.forward(self.conv1.forward(x))
        h1 = self._work("h1", h.shape)
        ops.relu_forward(h1, h)
        h = self.bn2.forward(self.conv2.forward(h1))
        short = x if self.shortcut is None else self.shortcut.forward(x)
        out = self._work("out", h.shape)
        ops.add_relu_forward(out, h, short)
        self._x, self._h1, self._out = x, h1, out
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self._out.shape)
        ops = self.device.ops
        # The gradient of relu(a + b) reaches both a and b unchanged.
        d_sum = self._work("d_sum", dy.shape)
        ops.add_relu_backward(d_sum, dy, self._out)
        d = self.conv2.backward(self.bn2.backward(d_sum))
        d_h = self._work("d_h1", d.shape)
        ops.relu_backward(d_h, d, self._h1)
        d_main = self.conv1.backward(self.bn1.backward(d_h))
        d_short = d_sum if self.shortcut is None else self.shortcut.backward(d_sum)
        dx = self._work("dx", x.shape)
        ops.add_forward(dx, d_main, d_short)
        return dx

    def output_shape(self, input_shape):
        return self.conv1.output_shape(input_shape)

    def summary_rows(self, input_shape, prefix=""):
        rows = []
        shape = input_shape
        for name in ("conv1", "bn1", "conv2", "bn2"):
            r, shape = getattr(self, name).summary_rows(shape, f"{prefix}.{name}" if prefix else name)
            rows += r
        if self.shortcut is not None:
            r, _ = self.shortcut.summary_rows(input_shape, f"{prefix}.shortcut" if prefix else "shortcut")
            rows += r
        n = 1
        for s in shape:
            n *= s
        # The two ReLUs and the residual add.
        rows.append((f"{prefix}.add_relu" if prefix else "add_relu", "AddReLU", shape, 0, 3 * n))
        return rows, shape

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"
