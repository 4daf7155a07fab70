"""Losses: fused softmax cross-entropy (optional label smoothing) and mean squared error.

``forward`` returns the mean loss as a Python float; ``backward()`` returns the gradient of that
mean with respect to the input (an array owned by the loss, overwritten by its next call).
"""

import numpy as np

from .layers.validate import check_input
from .runtime.devices import device_of


class CrossEntropyLoss:
    """Mean over the batch of -sum_k t_k log softmax(logits)_k, t = (1 - e) onehot + e / K."""

    def __init__(self, label_smoothing=0.0):
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self._buffers = {}
        self._saved = None

    def __call__(self, logits, targets):
        return self.forward(logits, targets)

    def _buf(self, device, name, shape, dtype):
        buf = self._buffers.get(name)
        if buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != dtype or device_of(buf) != device:
            buf = device.empty(shape, dtype)
            self._buffers[name] = buf
        return buf

    def forward(self, logits, targets, return_device_loss=False):
        """Mean loss (a float) of logits (N, K) against int class indices targets (N,).

        With ``return_device_loss=True`` the per-sample losses (N,) stay on the device and are
        returned instead, so a CUDA training step need not wait for a host copy.
        """
        device = device_of(logits)
        if logits.dtype not in (np.float32, np.float64):
            raise TypeError(f"CrossEntropyLoss: logits must be float32 or float64, got {logits.dtype}")
        check_input(logits, "CrossEntropyLoss", device, logits.dtype, ndim=2)
        n, k = logits.shape
        if device_of(targets) != device:
            targets_host = np.asarray(targets)
        else:
            targets_host = device.to_host(targets)
        if targets_host.shape != (n,):
            raise ValueError(
                f"CrossEntropyLoss: expected targets of shape ({n},) for logits of shape "
                f"{(n, k)}, got {tuple(targets_host.shape)}"
            )
        if targets_host.dtype.kind not in "iu":
            raise TypeError(f"CrossEntropyLoss: targets must be integer class indices, got {targets_host.dtype}")
        if n and (targets_host.min() < 0 or targets_host.max() >= k):
            raise ValueError(
                f"CrossEntropyLoss: targets must lie in [0, {k - 1}], got values from "
                f"{targets_host.min()} to {targets_host.max()}"
            )
        t = self._buf(device, "targets", (n,), np.int64)
        if isinstance(t, np.ndarray):
            t[...] = targets_host
        else:
            t.copy_to_device(np.ascontiguousarray(targets_host, dtype=np.int64))
        losses = self._buf(device, "losses", (n,), logits.dtype)
        probs = self._buf(device, "probs", (n, k), logits.dtype)
        device.ops.softmax_cross_entropy_forward(losses, probs, logits, t, self.label_smoothing)
        self._saved = (device, probs, t)
        if return_device_loss:
            return losses
        return float(device.to_host(losses).astype(np.float64).mean())

    def backward(self, scale=1.0):
        """Gradient (N, K) of the mean loss (times ``scale``) w.r.t. the logits."""
        if self._saved is None:
            raise RuntimeError("CrossEntropyLoss.backward called before forward")
        device, probs, t = self._saved
        d = self._buf(device, "dlogits", probs.shape, probs.dtype)
        device.ops.softmax_cross_entropy_backward(d, probs, t, self.label_smoothing, scale / probs.shape[0])
        return d

    @property
    def probabilities(self):
        """softmax(logits) of the last forward call, (N, K)."""
        return None if self._saved is None else self._saved[1]


class MSELoss:
    """Mean over every element of (pred - target)^2."""

    def __init__(self):
        self._buffers = {}
        self._saved = None

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target):
        device = device_of(pred)
        check_input(pred, "MSELoss", device, pred.dtype)
        target = device.asarray(target, dtype=pred.dtype) if device_of(target) != device else target
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(
                f"MSELoss: target shape {tuple(target.shape)} differs from prediction shape {tuple(pred.shape)}"
            )
        check_input(target, "MSELoss target", device, pred.dtype)
        if (
            "diff" not in self._buffers
            or self._buffers["diff"].shape != pred.shape
            or self._buffers["diff"].dtype != pred.dtype
        ):
            self._buffers["diff"] = device.empty(pred.shape, pred.dtype)
            self._buffers["loss"] = device.empty((1,), pred.dtype)
            self._buffers["dpred"] = device.empty(pred.shape, pred.dtype)
        device.ops.mse_forward(self._buffers["loss"], self._buffers["diff"], pred, target)
        self._saved = device
        return float(device.to_host(self._buffers["loss"])[0])

    def backward(self, scale=1.0):
        if self._saved is None:
            raise RuntimeError("MSELoss.backward called before forward")
        self._saved.ops.mse_backward(self._buffers["dpred"], self._buffers["diff"], scale)
        return self._buffers["dpred"]
