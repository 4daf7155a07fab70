"""Adversarial examples: FGSM and PGD attacks, and the batch transform behind adversarial training.

    x_adv = nc.adversarial.fgsm(model, x, y, eps)           # x + eps * sign(grad_x loss), clipped
    x_adv = nc.adversarial.pgd(model, x, y, eps, steps=10)  # iterated, projected onto the eps-ball

``x`` is a batch as the model sees it (normalised, float, (N, C, H, W)); ``eps`` is in the same
units, a number or one per channel (C,). To attack in pixel units (a fraction of the 0-255 range,
as eps = 0.1 is usually quoted), use :func:`pixel_units`: it turns a pixel eps and the data set's
mean and std into the per-channel eps and the bounds of valid pixels in normalised space.

The attacks run the model in eval mode, with every parameter temporarily frozen: the backward
pass computes only the gradient w.r.t. the input (no weight-gradient GEMMs), and the model's
accumulated gradients, mode and flags are left exactly as they were. Works on CPU and CUDA (the
sign arithmetic runs on the host).
"""

from __future__ import annotations

import numpy as np

from .inspect import as_model_input, input_gradient_mode
from .losses import CrossEntropyLoss

__all__ = ["Adversary", "fgsm", "input_gradient", "pgd", "pixel_units"]


def pixel_units(eps, mean, std):
    """(eps per channel (C,), (low (C,), high (C,))) in normalised units for a pixel-unit ``eps``
    (0..1) and the data set's per-channel ``mean`` and ``std``: pixels stay within [0, 1]."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return float(eps) / std, (-mean / std, (1.0 - mean) / std)


def _per_channel(value, channels):
    """A number or (C,) values as an array that broadcasts over (N, C, H, W)."""
    array = np.asarray(value, np.float64)
    if array.ndim == 0:
        return array
    if array.shape != (channels,):
        raise ValueError(f"expected a number or {channels} per-channel values, got shape {array.shape}")
    return array.reshape(1, channels, 1, 1)


def input_gradient(model, x, y, loss=None) -> np.ndarray:
    """Gradient (host array, shape of x) of the mean ``loss`` (default cross-entropy) of
    ``model(x)`` against labels ``y``, w.r.t. the input x; model in eval mode, state untouched."""
    loss = loss or CrossEntropyLoss()
    device = model.device
    with input_gradient_mode(model):
        logits = model.forward(as_model_input(model, x))
        loss.forward(logits, np.asarray(y))
        grad = model.backward(loss.backward())
        return np.array(device.to_host(grad), dtype=np.float64, copy=True)


def _clip(x, clip, channels):
    if clip is None:
        return x
    low, high = (_per_channel(b, channels) for b in clip)
    return np.clip(x, low, high)


def _host(x):
    return np.asarray(x.copy_to_host() if hasattr(x, "copy_to_host") else x, dtype=np.float64)


def fgsm(model, x, y, eps, clip=None, loss=None) -> np.ndarray:
    """The fast gradient sign method (Goodfellow et al. 2015): x + eps * sign(grad_x loss), clipped
    to ``clip`` = (low, high) (numbers or per channel) when given. Returns a host array of x's dtype."""
    x_host = _host(x)
    channels = x_host.shape[1]
    step = _per_channel(eps, channels) * np.sign(input_gradient(model, x_host, y, loss))
    return _clip(x_host + step, clip, channels).astype(model.dtype)


def pgd(model, x, y, eps, steps=10, step_size=None, clip=None, random_start=False, seed=0, loss=None) -> np.ndarray:
    """Projected gradient descent (Madry et al. 2018), on the loss: ``steps`` signed-gradient steps
    of ``step_size`` (default 2.5 * eps / steps), each projected back onto the L-infinity ball of
    radius ``eps`` around x and clipped to ``clip``; ``random_start`` begins at a uniform point of
    the ball. Returns a host array of x's dtype."""
    if steps < 1:
        raise ValueError(f"pgd: steps must be >= 1, got {steps}")
    x0 = _host(x)
    channels = x0.shape[1]
    radius = _per_channel(eps, channels)
    alpha = 2.5 * radius / steps if step_size is None else _per_channel(step_size, channels)
    current = x0.copy()
    if random_start:
        current += np.random.default_rng(seed).uniform(-1.0, 1.0, x0.shape) * radius
        current = _clip(current, clip, channels)
    for _ in range(steps):
        current = current + alpha * np.sign(input_gradient(model, current, y, loss))
        current = _clip(np.clip(current, x0 - radius, x0 + radius), clip, channels)
    return current.astype(model.dtype)


class Adversary:
    """Adversarial training's batch transform: replaces the first ``ratio`` of each batch with its
    FGSM examples against the current model (``eps`` and ``clip`` in the batch's units; see
    :func:`pixel_units`). Called by the Trainer before each step, on the batch it is given."""

    def __init__(self, eps, clip=None, ratio=0.5, method="fgsm"):
        if method != "fgsm":
            raise ValueError(f"adversarial training supports fgsm, not {method!r}")
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(f"adversarial ratio must lie in (0, 1], got {ratio!r}")
        self.eps, self.clip, self.ratio = eps, clip, float(ratio)

    def __call__(self, model, x, y):
        count = int(np.ceil(self.ratio * len(y)))
        adversarial = fgsm(model, x[:count], y[:count], self.eps, self.clip)
        device = model.device
        if isinstance(x, np.ndarray):
            x[:count] = adversarial
        else:  # a device batch: write the adversarial rows back into it
            device.asarray(adversarial, out=x[:count])
        return x
