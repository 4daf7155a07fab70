"""Containers: Sequential and the ResNet blocks (BasicBlock, Bottleneck)."""

from collections.abc import Mapping

from .activation import ReLU
from .conv import Conv2d
from .module import Module
from .norm import BatchNorm2d
from .pool import MaxPool2d


def _forward_replaced(layer):
    """True when something (inspect.feature_maps) replaced the layer's forward to see its output:
    then it must run on its own, not fused into a neighbour."""
    return "forward" in layer.__dict__


def _relu_then_max_pool(first, second):
    """A ReLU followed by max pooling (LeNet, AlexNet, VGG), neither with its forward replaced: the
    pair then runs as relu(pool(x)), equal to pool(relu(x)), with the ReLU on the pooled output
    only."""
    return (
        type(first) is ReLU
        and type(second) is MaxPool2d
        and not _forward_replaced(first)
        and not _forward_replaced(second)
    )


class Sequential(Module):
    """Layers applied in order; children are named "0", "1", ... as in PyTorch, or by the keys of
    one ``OrderedDict`` argument (``Sequential(OrderedDict(features=..., classifier=...))``)."""

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], Mapping):
            named = list(layers[0].items())
        else:
            named = [(str(i), layer) for i, layer in enumerate(layers)]
        for name, layer in named:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {name} is a {type(layer).__name__}, not a layer")
            setattr(self, str(name), layer)
        if named:
            object.__setattr__(self, "device", named[0][1].device)
            object.__setattr__(self, "dtype", named[0][1].dtype)

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def __iter__(self):
        return iter(self._modules.values())

    def first_layer(self):
        return self[0].first_layer() if len(self) else self

    def forward(self, x):
        self._relu_pools = []  # the indices of ReLUs run inside the max pooling after them
        layers = list(self._modules.values())
        i = 0
        while i < len(layers):
            if i + 1 < len(layers) and _relu_then_max_pool(layers[i], layers[i + 1]):
                x = layers[i + 1].forward_after_relu(x)
                self._relu_pools.append(i)
                i += 2
            else:
                x = layers[i].forward(x)
                i += 1
        return x

    def backward(self, dy):
        layers = list(self._modules.values())
        fused = set(getattr(self, "_relu_pools", ()))
        i = len(layers) - 1
        while i >= 0:
            if i - 1 in fused:
                dy = layers[i].backward_after_relu(dy)
                i -= 2
            else:
                dy = layers[i].backward(dy)
                i -= 1
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


class _ResidualBlock(Module):
    """relu(main(x) + shortcut(x)), main = stages of (conv, BatchNorm) with a ReLU between them.

    Subclasses register conv1, bn1, conv2, bn2, ... and ``shortcut`` (None for the identity, else
    a 1x1 convolution + BatchNorm "projection"), then call ``_finish(stages)``.
    """

    def _projection(self, in_channels, out_channels, stride):
        if stride != 1 or in_channels != out_channels:
            return Sequential(
                Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), BatchNorm2d(out_channels)
            )
        return None

    def _finish(self, stage_names):
        self._stage_names = stage_names  # [("conv1", "bn1"), ...] in order
        self._x = None
        self._joined = True  # whether the last BatchNorm ran fused with the add and ReLU

    def _stages(self):
        return [(getattr(self, c), getattr(self, b)) for c, b in self._stage_names]

    def forward(self, x):
        self._check_input(x, ndim=4, channels=self.in_channels)
        ops = self.device.ops
        stages = self._stages()
        self._hidden = []  # the ReLU outputs between stages, kept for backward
        self._fused = []  # whether each of those came from BatchNorm's fused ReLU
        h = x
        for i, (conv, bn) in enumerate(stages[:-1]):
            z = conv.forward(h)
            # The ReLU is fused into the BatchNorm's pass, unless bn's output before the ReLU is
            # watched.
            fused = not _forward_replaced(bn)
            if fused:
                h = bn.forward_relu(z)
            else:
                z = bn.forward(z)
                h = self._work(f"h{i + 1}", z.shape)
                ops.relu_forward(h, z)
            self._hidden.append(h)
            self._fused.append(fused)
        conv, bn = stages[-1]
        z = conv.forward(h)
        # The last BatchNorm, the residual add and the ReLU are one pass, unless bn's output is watched.
        self._joined = not _forward_replaced(bn)
        if self._joined:
            short = x if self.shortcut is None else self.shortcut.forward(x)
            out = bn.forward_add_relu(z, short)
        else:
            z = bn.forward(z)
            short = x if self.shortcut is None else self.shortcut.forward(x)
            out = self._work("out", z.shape)
            ops.add_relu_forward(out, z, short)
        self._x, self._out = x, out
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, self._out.shape)
        ops = self.device.ops
        stages = self._stages()
        conv, bn = stages[-1]
        # The gradient of relu(a + b) reaches both a and b unchanged: d_sum.
        if self._joined:
            d, d_sum = bn.backward_add_relu(dy)
        else:
            d_sum = self._work("d_sum", dy.shape)
            ops.add_relu_backward(d_sum, dy, self._out)
            d = bn.backward(d_sum)
        d = conv.backward(d)
        for i in range(len(stages) - 2, -1, -1):
            conv, bn = stages[i]
            # d is the gradient of this stage's output, after its ReLU.
            if self._fused[i]:
                d = conv.backward(bn.backward_relu(d))
                continue
            d_h = self._work(f"d_h{i + 1}", d.shape)
            ops.relu_backward(d_h, d, self._hidden[i])
            d = conv.backward(bn.backward(d_h))
        d_short = d_sum if self.shortcut is None else self.shortcut.backward(d_sum)
        dx = self._work("dx", x.shape)
        ops.add_forward(dx, d, d_short)
        return dx

    def output_shape(self, input_shape):
        for conv, _ in self._stages():
            input_shape = conv.output_shape(input_shape)
        return input_shape

    def summary_rows(self, input_shape, prefix=""):
        rows = []
        shape = input_shape
        for names in self._stage_names:
            for name in names:
                r, shape = getattr(self, name).summary_rows(shape, f"{prefix}.{name}" if prefix else name)
                rows += r
        if self.shortcut is not None:
            r, _ = self.shortcut.summary_rows(input_shape, f"{prefix}.shortcut" if prefix else "shortcut")
            rows += r
        n = 1
        for s in shape:
            n *= s
        # The ReLUs and the residual add.
        rows.append(
            (f"{prefix}.add_relu" if prefix else "add_relu", "AddReLU", shape, 0, (len(self._stage_names) + 1) * n)
        )
        return rows, shape

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class BasicBlock(_ResidualBlock):
    """ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    conv1 is 3x3 with ``stride``; the shortcut is the identity, or a 1x1 convolution + BatchNorm
    ("projection") when the stride or the channel count changes. Keys: conv1, bn1, conv2, bn2,
    shortcut.0, shortcut.1.
    """

    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        self.shortcut = self._projection(in_channels, out_channels, stride)
        self._finish([("conv1", "bn1"), ("conv2", "bn2")])


class Bottleneck(_ResidualBlock):
    """ResNet bottleneck block (He et al. 2016): 1x1 reduce to ``planes`` -> 3x3 (with ``stride``)
    -> 1x1 expand to 4 * planes, BatchNorm after each, ReLU between, then relu(main + shortcut)
    with a projection shortcut (1x1 conv + BN) where the shape changes. The stride sits on the
    3x3, as in torchvision. Keys: conv1, bn1, conv2, bn2, conv3, bn3, shortcut.0, shortcut.1.
    """

    expansion = 4

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        out_channels = planes * self.expansion
        self.in_channels, self.planes, self.out_channels, self.stride = in_channels, planes, out_channels, stride
        self.conv1 = Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = BatchNorm2d(out_channels)
        self.shortcut = self._projection(in_channels, out_channels, stride)
        self._finish([("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")])
