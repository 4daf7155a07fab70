"""The layer base class: parameters, buffers, children, devices, state dicts, summaries.

A subclass implements ``forward(x)`` and ``backward(dy)`` (and, for the summary,
``output_shape(input_shape)`` and ``flops(input_shape)``). Output and gradient arrays come from
:meth:`Module._work`, which keeps one buffer per name and reuses it while the shape holds, so a
training step allocates nothing once warm. The price, as in Caffe: the array returned by
``forward``/``backward`` belongs to the layer and is overwritten by its next call; copy it to keep it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runtime.device import CPU, Device
from ..runtime.devices import get_device
from .params import Parameter
from .validate import check_grad, check_input

if TYPE_CHECKING:
    from .summary import Summary


class Module:
    """Base class of every layer and model."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_nonpersistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_work_buffers", {})
        object.__setattr__(self, "device", CPU)
        object.__setattr__(self, "dtype", np.dtype(np.float32))
        object.__setattr__(self, "training", True)
        # False skips the input gradient (backward returns None): the first layer of a network in
        # training needs none, and for a convolution it costs a GEMM plus col2im.
        object.__setattr__(self, "input_grad", True)

    # ----------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif value is None and name in self._parameters:
            self._parameters[name] = None
        elif name in self._buffers:
            # ``layer.counter = 0`` rebinds a buffer: keep it an array of the buffer's dtype.
            old = self._buffers[name]
            if isinstance(value, (int, float, np.number)) and isinstance(old, np.ndarray):
                value = np.asarray(value, dtype=old.dtype)
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array, persistent=True):
        """A non-trainable array of the layer's state (e.g. BatchNorm running statistics).

        Persistent buffers are in ``state_dict()`` (with PyTorch's key names); non-persistent ones
        (as PyTorch's ``persistent=False``: a dropout call counter, say) only in
        ``state_dict(keep_nonpersistent=True)``, which checkpoints use so a resumed run continues
        exactly.
        """
        self._buffers[name] = array
        if persistent:
            self._nonpersistent.discard(name)
        else:
            self._nonpersistent.add(name)
        object.__setattr__(self, name, array)

    def _set_buffer(self, name, array):
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def _new_parameter(self, host_array):
        data = self.device.asarray(host_array.astype(self.dtype, copy=False))
        return Parameter(data, self.device.zeros(data.shape, self.dtype))

    # ----------------------------------------------------------------- traversal
    def children(self):
        return list(self._modules.values())

    def first_layer(self):
        """The first leaf layer data flows through (for containers: their first child's)."""
        return self

    def requires_input_grad(self, enabled: bool = True) -> Module:
        """Whether ``backward`` computes the gradient w.r.t. the input (returns self).

        Layers compute it by default; the models of ``numbacnn.models`` do not (as PyTorch, where
        an input without ``requires_grad`` gets none): for a first convolution it costs a GEMM and
        col2im that training never uses. Saliency maps and adversarial examples ask for it.
        """
        self.first_layer().input_grad = bool(enabled)
        return self

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix=""):
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                if p is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> list[Parameter]:
        """Every trainable Parameter, in state-dict order (duplicates removed)."""
        seen, out = set(), []
        for _, p in self.named_parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def named_buffers(self, prefix="", persistent=None):
        """(name, array) of every buffer; ``persistent`` True/False keeps only those kinds."""
        for mod_name, mod in self.named_modules(prefix):
            for name, b in mod._buffers.items():
                if persistent is None or (name not in mod._nonpersistent) == persistent:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # ----------------------------------------------------------------- transfer learning: freezing, a new head
    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter of this module and its children, as
        PyTorch's ``requires_grad_``; returns self. Frozen parameters get no gradient computed and
        no optimizer update or weight decay, also when frozen after the optimizer was built."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def freeze(self) -> Module:
        return self.requires_grad_(False)

    def unfreeze(self) -> Module:
        return self.requires_grad_(True)

    def reset_classifier(self, num_classes: int) -> Module:
        """Replace the last layer that can be rebuilt with another number of outputs (a Linear
        layer: the classifier; it has ``with_outputs``) by a new, freshly initialised one with
        ``num_classes`` outputs, under the same name (so the state-dict keys stay PyTorch's);
        returns self. Build the optimizer afterwards."""
        found = None
        for _, parent in self.named_modules():
            for name, child in parent._modules.items():
                if hasattr(child, "with_outputs"):
                    found = (parent, name, child)
        if found is None:
            raise ValueError(f"reset_classifier: {type(self).__name__} has no Linear layer to replace")
        parent, name, old = found
        setattr(parent, name, old.with_outputs(num_classes))
        return self

    # ----------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> Module:
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            self.device.ops.fill(p.grad, 0)

    # ----------------------------------------------------------------- forward / backward
    def _grad_of(self, param):
        """``param.grad``, or None for a frozen (or absent) parameter: kernels then skip it."""
        return param.grad if param is not None and param.requires_grad else None

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x: Any) -> Any:
        raise NotImplementedError

    def backward(self, dy: Any) -> Any:
        raise NotImplementedError

    def _work(self, name, shape, dtype=None):
        """A reusable array owned by this layer (reallocated only when shape or dtype change)."""
        dtype = np.dtype(dtype or self.dtype)
        shape = tuple(int(s) for s in shape)
        buf = self._work_buffers.get(name)
        if buf is None or tuple(buf.shape) != shape or buf.dtype != dtype:
            buf = self.device.empty(shape, dtype)
            self._work_buffers[name] = buf
        return buf

    def _check_input(self, x, ndim=None, channels=None, features=None):
        check_input(x, type(self).__name__, self.device, self.dtype, ndim, channels, features)

    def _saved(self, name="_x"):
        """The array saved by forward for backward, with a clear error if forward never ran."""
        value = getattr(self, name, None)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return value

    def _check_grad(self, dy, expected_shape):
        check_grad(dy, type(self).__name__, expected_shape, self.dtype)

    # ----------------------------------------------------------------- device / dtype
    def to(self, target: Device | str | np.dtype | type) -> Module:
        """Move to a device ("cpu", "cuda", a Device) or convert to a float dtype; returns self.

        Gradients are reset to zero; an optimizer built before the move must be rebuilt.
        """
        device, dtype = self.device, self.dtype
        if isinstance(target, (Device, str)) and not _is_dtype_name(target):
            device = get_device(target)
        else:
            dtype = np.dtype(target)
            if dtype not in (np.float32, np.float64):
                raise TypeError(f"layers compute in float32 or float64, not {dtype}")
        for _, m in self.named_modules():
            m._move(device, dtype)
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def _move(self, device, dtype):
        old = self.device
        for name, p in self._parameters.items():
            if p is None:
                continue
            host = old.to_host(p.data).astype(dtype)
            p.data = device.asarray(host)
            p.grad = device.zeros(host.shape, dtype)
        for name, b in list(self._buffers.items()):
            host = old.to_host(b)
            # Integer buffers (counters) stay on the host: updating one on a GPU would cost a
            # launch per step for nothing the kernels read.
            if host.dtype.kind == "f":
                self._set_buffer(name, device.asarray(host.astype(dtype)))
        self._work_buffers.clear()
        object.__setattr__(self, "device", device)
        object.__setattr__(self, "dtype", np.dtype(dtype))

    # ----------------------------------------------------------------- state dict
    def state_dict(self, keep_nonpersistent: bool = False) -> OrderedDict[str, np.ndarray]:
        """{name: numpy array} with PyTorch key names ("0.weight", "bn1.running_mean", ...).

        ``keep_nonpersistent=True`` adds the non-persistent buffers (see :meth:`register_buffer`).
        """
        out = OrderedDict()
        for name, p in self.named_parameters():
            out[name] = np.array(self.device.to_host(p.data), copy=True)
        for name, b in self.named_buffers(persistent=None if keep_nonpersistent else True):
            out[name] = np.array(b if isinstance(b, np.ndarray) else self.device.to_host(b), copy=True)
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray], strict: bool = True) -> Module:
        """Copy arrays into parameters and buffers; missing/unexpected/mis-shaped keys raise KeyError
        or ValueError naming the key."""
        own = OrderedDict()
        for name, p in self.named_parameters():
            own[name] = ("param", p)
        for name, mod_buf in self._named_buffer_owners():
            own[name] = ("buffer", mod_buf)
        optional = {name for name, _ in self.named_buffers(persistent=False)}
        missing = [k for k in own if k not in state and k not in optional]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys: {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected keys: {', '.join(unexpected)}")
            raise KeyError("load_state_dict: " + "; ".join(parts))
        # Check every key before copying any: a bad key must leave the model as it was.
        copies = []
        for name, (kind, target) in own.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if kind == "param":
                expected = target.shape
            else:
                mod, buf_name = target
                expected = tuple(mod._buffers[buf_name].shape)
            if tuple(value.shape) != tuple(expected):
                raise ValueError(
                    f"load_state_dict: key '{name}' has shape {tuple(value.shape)}, the model expects {tuple(expected)}"
                )
            if not np.issubdtype(value.dtype, np.number):
                raise TypeError(f"load_state_dict: key '{name}' holds {value.dtype}, not numbers")
            # Copy into the existing memory: parameters may be views of an optimizer's flat storage.
            dest = target.data if kind == "param" else target[0]._buffers[target[1]]
            copies.append((dest, value))
        for dest, value in copies:
            if isinstance(dest, np.ndarray):  # CPU arrays, and host-side counters on any device
                dest[...] = value.astype(dest.dtype)
            else:
                self.device.ops.copy(dest, self.device.asarray(value.astype(dest.dtype)))
        return self

    # (save, load) of weight files, registered by formats/module_files.py (layers import nothing
    # above them); numbacnn imports it, so these methods always work.
    weight_files = None

    def save(self, path) -> str:
        """Write the weights to ``path`` (.safetensors, PyTorch's key names); returns the path
        (formats/module_files.py: ``save_module``)."""
        return self.weight_files[0](self, path)

    def load(self, path, strict: bool = True) -> Module:
        """Load weights from a .safetensors file or a numbacnn checkpoint; returns self
        (formats/module_files.py: ``load_module``)."""
        return self.weight_files[1](self, path, strict)

    def _named_buffer_owners(self):
        for mod_name, mod in self.named_modules():
            for name in mod._buffers:
                yield (f"{mod_name}.{name}" if mod_name else name), (mod, name)

    # ----------------------------------------------------------------- summary
    def output_shape(self, input_shape):
        """Shape of forward's output for an input of ``input_shape`` (N, ...)."""
        return tuple(input_shape)

    def flops(self, input_shape):
        """Forward floating-point operations (a multiply-add counts 2) for ``input_shape``."""
        return 0

    def summary_rows(self, input_shape, prefix=""):
        """[(name, type, output shape, params, flops)] for this layer (leaves of containers)."""
        out_shape = self.output_shape(input_shape)
        params = sum(p.size for p in self._parameters.values() if p is not None)
        return [
            (prefix or type(self).__name__.lower(), type(self).__name__, out_shape, params, self.flops(input_shape))
        ], out_shape

    def summary(self, input_shape: Sequence[int]) -> Summary:
        """A :class:`Summary` table (print it) of output shapes, params and FLOPs per layer.

        ``input_shape`` is (C, H, W) (batch 1 assumed) or (N, C, H, W) / (N, features).
        """
        from .summary import Summary

        shape = tuple(int(s) for s in input_shape)
        if len(shape) in (1, 3):
            shape = (1,) + shape
        rows, out_shape = self.summary_rows(shape)
        return Summary(rows, shape, out_shape, self.num_parameters())

    def extra_repr(self):
        return ""

    def __repr__(self):
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            child_lines = repr(child).split("\n")
            lines.append(f"  ({name}): " + "\n  ".join(child_lines))
        lines.append(")")
        return "\n".join(lines)


def _is_dtype_name(value):
    return isinstance(value, str) and value.lower() in ("float32", "float64", "float", "double")
