"""Weight averaging (``--ema DECAY``): an exponential moving average of a model's parameters and of
its BatchNorm running statistics, as timm's ModelEma keeps, updated after every optimizer step by
one fused kernel (``ema_update``) over the optimizer's flat parameter storage and one per buffer.

The decay ramps up from 0.1 as min(decay, (1 + t) / (10 + t)) after t updates (TensorFlow's
ExponentialMovingAverage with num_updates), so the average follows the weights closely while they
move fast at the start instead of remembering the random initialisation for 1 / (1 - decay) steps.
Evaluation runs on the averaged weights (``in_use``); checkpoints keep them beside the raw ones.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running average of ``model``'s weights (the flat storage of ``optimizer``) and float
    buffers, with ``decay`` in (0, 1)."""

    def __init__(self, model, optimizer, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"--ema: the decay must lie in (0, 1) (e.g. 0.999), got {decay!r}")
        self.model, self.decay, self.updates = model, float(decay), 0
        self.device = model.device
        self.live = [optimizer.storage.data] + [b for _, b in self._buffers()]
        self.average = [self._copy(a) for a in self.live]
        self._spare = [self.device.empty(a.shape, a.dtype) for a in self.live]

    def _buffers(self):
        """The model's float buffers (BatchNorm's running mean and variance), by name."""
        for name, b in self.model.named_buffers(persistent=True):
            if np.dtype(b.dtype).kind == "f":
                yield name, b

    def _copy(self, array):
        out = self.device.empty(array.shape, array.dtype)
        self.device.ops.copy(out, array)
        return out

    def update(self):
        """Fold the current weights in (after an optimizer step)."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, live in zip(self.average, self.live):
            self.device.ops.ema_update(average, live, decay)

    @contextlib.contextmanager
    def in_use(self):
        """The averaged weights in the model for the block (evaluation), the live ones after."""
        ops = self.device.ops
        for spare, average, live in zip(self._spare, self.average, self.live):
            ops.copy(spare, live)
            ops.copy(live, average)
        try:
            yield self.model
        finally:
            for spare, live in zip(self._spare, self.live):
                ops.copy(live, spare)

    def state_dict(self):
        """{name: host array}: the averaged weights under the model's state-dict names."""
        with self.in_use():
            return {k: np.array(v, copy=True) for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state, updates):
        """Take the averaged weights of a checkpoint (``state_dict``'s form) and its update count."""
        with self.in_use():
            self.model.load_state_dict(state)
            for average, live in zip(self.average, self.live):
                self.device.ops.copy(average, live)
        self.updates = int(updates)
