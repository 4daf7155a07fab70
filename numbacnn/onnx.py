"""ONNX export: a numbacnn model as an ONNX graph (opset 17) that ONNX Runtime and other tools run.

    import numbacnn as nc
    nc.onnx.export(model, "lenet5.onnx", input_shape=(1, 28, 28))

The graph computes what the model computes in eval mode: BatchNorm with its running statistics
(``BatchNormalization`` in inference form), Dropout as nothing, ``Linear`` as ``Gemm`` with
``transB=1`` (numbacnn and PyTorch keep weights as (out, in)), ``Flatten(axis=1)``. The batch
dimension is symbolic (``dim_param "batch"``), so one file takes any batch size. Initializers keep
the state dict's names. Weights are written in float32, the type ONNX Runtime's CPU kernels cover.

Needs the optional extra: ``pip install 'numbacnn[onnx]'`` (onnx; onnxruntime to run the file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .formats.atomic import atomic_write
from .layers import (
    ELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BasicBlock,
    BatchNorm2d,
    Bottleneck,
    Concat,
    Conv2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    Maxout,
    MaxPool2d,
    Module,
    PReLU,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .models import ResNet
from .version import __version__

OPSET = 17
INSTALL_HINT = "ONNX export needs the onnx package: pip install 'numbacnn[onnx]'"

__all__ = ["OPSET", "export", "to_model_proto"]


def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return onnx


class _Graph:
    """The nodes and initializers of the graph being built, and the names already taken."""

    def __init__(self, onnx, state):
        self.onnx, self.state = onnx, state
        self.nodes, self.initializers, self.used = [], [], set()
        self.shapes = {}  # value name -> its shape with batch 1 (for ops that need sizes)

    def fresh(self, base):
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def weight(self, key, array=None):
        """The initializer for state-dict ``key`` (or for ``array`` under that name; integer
        arrays, such as shapes, keep their type)."""
        value = self.state[key] if array is None else array
        value = np.ascontiguousarray(value, np.int64 if np.asarray(value).dtype.kind == "i" else np.float32)
        self.initializers.append(self.onnx.numpy_helper.from_array(value, key))
        self.used.add(key)
        return key

    def node(self, op, inputs, where, **attributes):
        """Add one node named after the layer ``where``; returns its output's name."""
        name = self.fresh(f"{where}/{op}" if where else op)
        out = self.fresh(f"{where}/{op}_out" if where else f"{op}_out")
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=name, **attributes))
        if inputs and inputs[0] in self.shapes:  # elementwise ops keep it; _emit sets the others'
            self.shapes[out] = self.shapes[inputs[0]]
        return out


def _key(prefix, name):
    return f"{prefix}.{name}" if prefix else name


# Conv2d's padding modes as ONNX Pad modes; "circular" (a wrap, which Pad has only from opset 19)
# is built from Slice and Concat.
_PAD_MODES = {"reflect": "reflect", "replicate": "edge"}


def _slice(g, x, axis, start, end, where):
    starts, ends, axes = (g.weight(g.fresh(f"{where}/{n}"), np.array([v], np.int64)) for n, v in
                          (("starts", start), ("ends", end), ("axes", axis)))  # fmt: skip
    return g.node("Slice", [x, starts, ends, axes], where)


def _wrap(g, x, pads, where):
    """x (N, C, H, W) padded circularly by pads (top, bottom, left, right): along each axis the
    last ``before`` rows, the input, then its first ``after`` rows, joined by Concat."""
    shape = g.shapes[x]
    for axis, (before, after) in ((2, pads[:2]), (3, pads[2:])):
        if before == after == 0:
            continue
        size = shape[axis]
        parts = ([_slice(g, x, axis, size - before, size, where)] if before else []) + [x]
        parts += [_slice(g, x, axis, 0, after, where)] if after else []
        x = g.node("Concat", parts, where, axis=axis)
        shape = shape[:axis] + (size + before + after,) + shape[axis + 1 :]
        g.shapes[x] = shape
    return x


def _conv(layer, g, x, where):
    top, bottom, left, right = layer._pads
    pads = [top, left, bottom, right]
    if layer.padding_mode != "zeros" and max(pads) > 0:
        if layer.padding_mode == "circular":
            x = _wrap(g, x, (top, bottom, left, right), where)
        else:
            amounts = g.weight(f"{where}/pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))
            x = g.node("Pad", [x, amounts], where, mode=_PAD_MODES[layer.padding_mode])
        pads = [0, 0, 0, 0]
    inputs = [x, g.weight(_key(where, "weight"))]
    if layer.bias is not None:
        inputs.append(g.weight(_key(where, "bias")))
    return g.node(
        "Conv",
        inputs,
        where,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=pads,
        dilations=list(layer.dilation),
        group=layer.groups,
    )


def _linear(layer, g, x, where):
    inputs = [x, g.weight(_key(where, "weight"))]
    if layer.bias is not None:
        inputs.append(g.weight(_key(where, "bias")))
    return g.node("Gemm", inputs, where, transB=1)


def _batchnorm(layer, g, x, where):
    names = [g.weight(_key(where, k)) for k in ("weight", "bias", "running_mean", "running_var")]
    # ONNX's momentum weighs the old running value (PyTorch's weighs the new batch).
    return g.node("BatchNormalization", [x, *names], where, epsilon=layer.eps, momentum=1.0 - layer.momentum)


def _pool(op):
    """MaxPool / AveragePool. ONNX's ceil_mode keeps a last window that starts in the end padding,
    which PyTorch (and numbacnn) drop, so ceil_mode is exported as explicit end pads: each axis is
    padded past its end just as far as numbacnn's last window reaches (never as far as a kernel).
    Averages count only what numbacnn counts: with count_include_pad, the padding inside the
    layer's own pads becomes zeros of a Pad op and the rest is excluded (count_include_pad=0)."""

    def emit(layer, g, x, where):
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
        extra = {"count_include_pad": int(layer.count_include_pad)} if op == "AveragePool" else {}
        pads = [ph, pw, ph, pw]
        if layer.ceil_mode:
            _, _, height, width = g.shapes[x]
            oh, ow = layer.output_shape(g.shapes[x])[2:]
            if extra.get("count_include_pad") and (ph or pw):
                amounts = np.array([0, 0, ph, pw, 0, 0, ph, pw], np.int64)
                x = g.node("Pad", [x, g.weight(g.fresh(f"{where}/pads"), amounts)], where)
                height, width, ph, pw = height + 2 * ph, width + 2 * pw, 0, 0
                g.shapes[x] = g.shapes[x][:2] + (height, width)
            # End pads reaching just past numbacnn's last window: ONNX's floor rule then counts it.
            ends = [max(0, (oh - 1) * sh + kh - height - ph), max(0, (ow - 1) * sw + kw - width - pw)]
            pads = [ph, pw, *ends]
            extra = {"count_include_pad": 0} if extra else {}
        return g.node(op, [x], where, kernel_shape=[kh, kw], strides=[sh, sw], pads=pads, ceil_mode=0, **extra)

    return emit


def _bins(size, out):
    """(out, size) averaging matrix of adaptive pooling: row i averages [floor(i size/out),
    ceil((i+1) size/out)), as numbacnn and PyTorch bin."""
    matrix = np.zeros((out, size), np.float32)
    for i in range(out):
        start, end = i * size // out, -(-(i + 1) * size // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def _adaptive_avg(layer, g, x, where):
    _, _, h, w = g.shapes[x]
    oh, ow = layer.output_shape((1, 1, h, w))[2:]
    if (oh, ow) == (1, 1):
        return g.node("GlobalAveragePool", [x], where)
    if h % oh == 0 and w % ow == 0:
        size = [h // oh, w // ow]
        return g.node("AveragePool", [x], where, kernel_shape=size, strides=size)
    # Bins of unequal size: the input's shape is fixed at export, so the pooling is exact as two
    # products, x (N, C, H, W) @ Bw' (W, OW), then Bh (OH, H) @ that (MatMul broadcasts over N, C).
    columns = g.node("MatMul", [x, g.weight(g.fresh(f"{where}/bins_w"), _bins(w, ow).T)], where)
    return g.node("MatMul", [g.weight(g.fresh(f"{where}/bins_h"), _bins(h, oh)), columns], where)


def _prelu(layer, g, x, where):
    # PRelu broadcasts its slope from the right: one per channel is (C, 1, 1) for images.
    rank = len(g.shapes[x])
    slope = g.state[_key(where, "weight")]
    if layer.num_parameters > 1:
        slope = slope.reshape((-1,) + (1,) * (rank - 2))
    return g.node("PRelu", [x, g.weight(_key(where, "weight"), slope)], where)


def _maxout(layer, g, x, where):
    shape = g.shapes[x]
    groups = shape[1] // layer.pool_size
    # Reshape (N, C, ...) -> (N, C/k, k, ...) (0 keeps the batch), then the max over the k axis.
    target = g.weight(f"{where}/shape", np.array([0, groups, layer.pool_size, *shape[2:]], np.int64))
    grouped = g.node("Reshape", [x, target], where)
    return g.node("ReduceMax", [grouped], where, axes=[2], keepdims=0)


def _concat(layer, g, x, where):
    outputs = [_emit(branch, g, x, _key(where, name)) for name, branch in layer._modules.items()]
    return g.node("Concat", outputs, where, axis=1)


def _simple(op, **fixed):
    def emit(layer, g, x, where):
        attributes = {k: (getattr(layer, v) if isinstance(v, str) else v) for k, v in fixed.items()}
        return g.node(op, [x], where, **attributes)

    return emit


def _children_in_order(module, g, x, where):
    # Sequential runs its children in registration order; so does ResNet (conv1 ... fc).
    for name, child in module._modules.items():
        x = _emit(child, g, x, _key(where, name))
    return x


def _residual_block(block, g, x, where):
    """BasicBlock and Bottleneck: (conv, bn) stages with ReLUs between, then relu(main + shortcut)."""
    h = x
    for i, (conv, bn) in enumerate(block._stage_names):
        if i:
            h = g.node("Relu", [h], _key(where, f"relu{i}"))
        h = _emit(getattr(block, bn), g, _emit(getattr(block, conv), g, h, _key(where, conv)), _key(where, bn))
    short = x if block.shortcut is None else _emit(block.shortcut, g, x, _key(where, "shortcut"))
    return g.node("Relu", [g.node("Add", [h, short], _key(where, "add"))], _key(where, "relu_out"))


_EXPORTERS = {
    Conv2d: _conv,
    Linear: _linear,
    BatchNorm2d: _batchnorm,
    MaxPool2d: _pool("MaxPool"),
    AvgPool2d: _pool("AveragePool"),
    AdaptiveAvgPool2d: _adaptive_avg,
    PReLU: _prelu,
    Maxout: _maxout,
    Concat: _concat,
    ReLU: _simple("Relu"),
    LeakyReLU: _simple("LeakyRelu", alpha="negative_slope"),
    ELU: _simple("Elu", alpha="alpha"),
    Sigmoid: _simple("Sigmoid"),
    Tanh: _simple("Tanh"),
    Softmax: _simple("Softmax", axis="dim"),
    Flatten: _simple("Flatten", axis=1),
    Dropout: lambda layer, g, x, where: x,  # identity at inference
    Sequential: _children_in_order,
    ResNet: _children_in_order,
    BasicBlock: _residual_block,
    Bottleneck: _residual_block,
}


def _emit(layer, g, x, where):
    for cls in type(layer).__mro__:
        if cls in _EXPORTERS:
            out = _EXPORTERS[cls](layer, g, x, where)
            g.shapes[out] = tuple(layer.output_shape(g.shapes[x]))
            return out
    raise ValueError(
        f"ONNX export: layer '{where or 'model'}' ({type(layer).__name__}) has no ONNX form in numbacnn; "
        f"layers that export: {', '.join(sorted(c.__name__ for c in _EXPORTERS))}"
    )


def _full_shape(input_shape):
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"ONNX export: input_shape should be (C, H, W) or (N, C, H, W), got {tuple(input_shape)}")
    return shape


def to_model_proto(model: Module, input_shape: Sequence[int], opset: int = OPSET):
    """The ``onnx.ModelProto`` of ``model`` for inputs of ``input_shape`` (C, H, W) (batch symbolic)."""
    onnx = _require_onnx()
    helper = onnx.helper
    shape = _full_shape(input_shape)
    out_shape = model.output_shape(shape)  # also checks the shape fits the model
    g = _Graph(onnx, model.state_dict())
    g.used.add("input")
    g.shapes["input"] = (1,) + shape[1:]
    last = _emit(model, g, "input", "")
    if g.nodes and g.nodes[-1].output[0] == last:
        g.nodes[-1].output[0] = "output"
    else:  # a model that ends in a no-op (or is one)
        g.nodes.append(helper.make_node("Identity", [last], ["output"], name="output/Identity"))
    float_type = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes,
        type(model).__name__,
        [helper.make_tensor_value_info("input", float_type, ["batch", *shape[1:]])],
        [helper.make_tensor_value_info("output", float_type, ["batch", *out_shape[1:]])],
        initializer=g.initializers,
    )
    opset_id = helper.make_opsetid("", opset)
    proto = helper.make_model(graph, opset_imports=[opset_id], producer_name="numbacnn", producer_version=__version__)
    # onnx stamps its own newest IR version, which older runtimes refuse; the opset needs less.
    proto.ir_version = helper.find_min_ir_version_for([opset_id])
    return proto


def export(model: Module, path: str | os.PathLike, input_shape: Sequence[int], opset: int = OPSET) -> str:
    """Write ``model`` (as in eval mode) to ``path`` as ONNX, checked by ``onnx.checker`` first.

    ``input_shape`` is (C, H, W) or (N, C, H, W); the batch dimension is left symbolic. Returns
    the path. ImportError naming the pip command without onnx; ValueError naming a layer that has
    no ONNX form.
    """
    onnx = _require_onnx()
    proto = to_model_proto(model, input_shape, opset)
    onnx.checker.check_model(proto, full_check=True)
    atomic_write(path, lambda f: f.write(proto.SerializeToString()), suffix=".onnx")
    return str(path)
