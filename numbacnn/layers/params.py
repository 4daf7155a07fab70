"""Parameters and their flat storage.

A :class:`Parameter` holds ``data`` and ``grad`` (same shape, same device). Layers always reach
their weights through ``param.data`` / ``param.grad``, never through a saved array reference, so
:func:`flatten` can move every parameter of a model into one contiguous buffer (and every grad
into another) by rebinding those attributes. The optimizer then updates the whole model with one
kernel call per step instead of one per tensor.
"""

import numpy as np


class Parameter:
    """A trainable array: ``data`` and its gradient ``grad`` (accumulated by backward).

    ``requires_grad = False`` freezes it (as in PyTorch): layers compute no gradient for it (a
    frozen convolution weight skips its GEMM), and optimizers neither update nor decay it.
    """

    def __init__(self, data, grad=None, requires_grad=True):
        self.data = data
        self.grad = grad
        self.requires_grad = bool(requires_grad)
        self.storage = None  # the FlatStorage whose views data and grad are (set by flatten)

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return int(np.prod(self.data.shape))

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = bool(requires_grad)
        return self

    def __repr__(self):
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.shape}, dtype={self.dtype}{frozen})"


class FlatStorage:
    """Flat data/grad buffers that back a list of parameters (all on one device, one dtype)."""

    def __init__(self, params, data, grad, device):
        self.params = params
        self.device = device
        self.data = data
        self.grad = grad
        # The views flatten() bound: while each parameter still holds these very objects, the
        # storage is intact and is_intact() need not look at memory addresses (called per step).
        self._bound = [(p.data, p.grad) for p in params]

    def is_intact(self):
        """True while every parameter's data and grad are still views of this storage (``to()``
        breaks that)."""
        if all(p.data is d and p.grad is g for p, (d, g) in zip(self.params, self._bound)):
            return True
        offset = 0
        for p in self.params:
            n = p.size
            for array, flat in ((p.data, self.data), (p.grad, self.grad)):
                if (
                    array is None
                    or tuple(array.shape) != p.shape
                    or not self.device.same_memory(array, flat[offset : offset + n])
                ):
                    return False
            offset += n
        self._bound = [(p.data, p.grad) for p in self.params]
        return True

    def trainable_runs(self):
        """[(start, stop)] of the flat buffers that hold trainable parameters (requires_grad),
        adjacent ones merged: the spans an optimizer updates (the whole buffer when none is frozen)."""
        runs, offset = [], 0
        for p in self.params:
            n = p.size
            if p.requires_grad:
                if runs and runs[-1][1] == offset:
                    runs[-1] = (runs[-1][0], offset + n)
                else:
                    runs.append((offset, offset + n))
            offset += n
        return runs


def flatten(params, device):
    """Move ``params`` into one flat data buffer and one flat grad buffer on ``device``.

    Parameter values and accumulated grads are kept. Returns the :class:`FlatStorage`.
    """
    params = list(params)
    if not params:
        raise ValueError("no parameters to optimize: the model has no trainable parameters")
    dtypes = {p.dtype for p in params}
    if len(dtypes) > 1:
        raise TypeError(
            f"parameters mix dtypes {sorted(str(d) for d in dtypes)}; convert the "
            f"model with .to(np.float32) or .to(np.float64) first"
        )
    dtype = dtypes.pop()
    total = sum(p.size for p in params)
    data = device.empty((total,), dtype)
    grad = device.empty((total,), dtype)
    # On the CPU this one-time copy needs no kernel: none is compiled or loaded before the first
    # training step (quick_start.py can only route kernels that run inside fit()).
    if device.name == "cpu":
        copy, fill = np.copyto, np.ndarray.fill
    else:
        copy, fill = device.ops.copy, device.ops.fill
    offset = 0
    for p in params:
        n = p.size
        d_view = data[offset : offset + n].reshape(p.shape)
        g_view = grad[offset : offset + n].reshape(p.shape)
        copy(d_view, p.data)
        if p.grad is None:
            fill(g_view, 0)
        else:
            copy(g_view, p.grad)
        p.data, p.grad = d_view, g_view
        offset += n
    storage = FlatStorage(params, data, grad, device)
    for p in params:
        p.storage = storage
    return storage
