"""Inverted dropout with a seeded, counter-based mask (the same mask on CPU and CUDA)."""

import numpy as np

from .. import init
from .module import Module


class Dropout(Module):
    """Training: zero each element with probability p and scale the rest by 1/(1-p). Eval: identity.

    Each forward call in training uses a fresh seed: the layer's base seed (drawn from the global
    generator at construction, see ``numbacnn.manual_seed``) plus a call counter. The counter is a
    non-persistent buffer (``calls``): checkpoints keep it, PyTorch-style state dicts do not.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.seed = int(init.generator().integers(0, 2**40))
        self.register_buffer("calls", np.zeros((), np.int64), persistent=False)
        self._x = None

    def forward(self, x):
        self._check_input(x)
        self._x = x
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        out = self._work("out", x.shape)
        self._mask = self._work("mask", x.shape)
        self.device.ops.dropout_forward(out, self._mask, x, self.p, self.seed + int(self.calls))
        self.calls += 1
        return out

    def backward(self, dy):
        x = self._saved()
        self._check_grad(dy, x.shape)
        if self._mask is None:
            return dy
        dx = self._work("dx", x.shape)
        self._apply_mask(dx, dy)
        return dx

    def _apply_mask(self, out, a):
        """out = a * the mask of the last forward (forward's and backward's common step)."""
        self.device.ops.dropout_backward(out, a, self._mask)

    def extra_repr(self):
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Channel dropout (PyTorch's Dropout2d): in training each (sample, channel) plane of x
    (N, C, H, W) is zeroed with probability p and the kept ones scaled by 1/(1-p). Eval: identity.
    The per-plane mask comes from the same seeded counter hash as Dropout's."""

    def forward(self, x):
        self._check_input(x, ndim=4)
        self._x = x
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        n, c = x.shape[0], x.shape[1]
        ones = self._work("ones", (n, c))
        self.device.ops.fill(ones, 1)
        self._mask = self._work("mask", (n, c))
        self.device.ops.dropout_forward(
            self._mask, self._work("mask_draw", (n, c)), ones, self.p, self.seed + int(self.calls)
        )
        self.calls += 1
        out = self._work("out", x.shape)
        self._apply_mask(out, x)
        return out

    def _apply_mask(self, out, a):
        self.device.ops.scale_channels(out, a, self._mask)  # one mask value per (n, c) plane
