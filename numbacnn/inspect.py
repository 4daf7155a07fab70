"""Seeing inside a network: filters, feature maps and saliency, as arrays (the CLI draws them).

    maps = nc.inspect.feature_maps(model, x, ["0", "3"])   # {layer name: (N, C, H, W) activations}
    sal, target = nc.inspect.saliency(model, x)             # (N, H, W), and the classes explained
    w = nc.inspect.filters(model, "0")                      # (K, C, KH, KW) conv weights

Layers are named as in the state dict ("0", "layer1.0.conv1"); :func:`layer_names` lists them.
Feature maps are caught by wrapping the chosen layers' ``forward`` for one pass (the same for every
model, no per-model code). Everything runs in eval mode and leaves the model as it found it.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import numpy as np

__all__ = [
    "as_model_input",
    "feature_maps",
    "filters",
    "input_gradient_mode",
    "layer_names",
    "saliency",
    "score_gradient",
]


def layer_names(model, kind=None) -> list[str]:
    """Names of the model's leaf layers in registration order (only those of class ``kind``)."""
    return [
        name for name, m in model.named_modules() if name and not m._modules and (kind is None or isinstance(m, kind))
    ]


def _module(model, name):
    modules = dict(model.named_modules())
    if name not in modules:
        raise ValueError(f"no layer named {name!r}; layers: {', '.join(layer_names(model))}")
    return modules[name]


@contextlib.contextmanager
def input_gradient_mode(model):
    """Eval mode, the input gradient on, every parameter frozen (backward then computes only the
    gradient w.r.t. the input: no weight GEMMs, the model's accumulated grads untouched); all
    restored on exit."""
    params = model.parameters()
    saved = (model.training, model.first_layer().input_grad, [p.requires_grad for p in params])
    model.eval().requires_input_grad(True)
    for p in params:
        p.requires_grad = False
    try:
        yield model
    finally:
        training, input_grad, flags = saved
        model.train(training)
        model.first_layer().input_grad = input_grad
        for p, flag in zip(params, flags):
            p.requires_grad = flag


def as_model_input(model, x):
    """x (host or device) as a C-contiguous array of the model's dtype on its device."""
    host = x.copy_to_host() if hasattr(x, "copy_to_host") else x
    return model.device.asarray(np.ascontiguousarray(host, dtype=model.dtype))


def feature_maps(model, x, layers=None) -> OrderedDict[str, np.ndarray]:
    """{name: host copy of that layer's output} for one eval-mode forward pass of batch ``x``;
    ``layers`` defaults to every convolution."""
    from .layers import Conv2d

    names = list(layers) if layers else layer_names(model, Conv2d)
    targets = [(name, _module(model, name)) for name in names]
    caught = OrderedDict()
    device = model.device
    was_training = model.training
    model.eval()
    try:
        for name, layer in targets:
            original = layer.forward

            def catching(inputs, _original=original, _name=name):
                out = _original(inputs)
                caught[_name] = np.array(device.to_host(out), copy=True)
                return out

            object.__setattr__(layer, "forward", catching)
        model.forward(as_model_input(model, x))
    finally:
        for _, layer in targets:
            layer.__dict__.pop("forward", None)
        model.train(was_training)
    return OrderedDict((name, caught[name]) for name in names)


def score_gradient(model, x, target=None) -> tuple[np.ndarray, np.ndarray]:
    """(gradient (N, C, H, W) of each sample's ``target`` logit w.r.t. its input, the targets
    (N,)); ``target`` is a class index, one per sample, or None for the predicted class."""
    device = model.device
    with input_gradient_mode(model):
        logits = model.forward(as_model_input(model, x))
        host = np.asarray(device.to_host(logits))
        n = host.shape[0]
        chosen = host.argmax(axis=1) if target is None else np.broadcast_to(np.asarray(target, np.int64), (n,))
        if chosen.min() < 0 or chosen.max() >= host.shape[1]:
            raise ValueError(f"target must lie in [0, {host.shape[1] - 1}], got {target!r}")
        seed = np.zeros(host.shape, model.dtype)
        seed[np.arange(n), chosen] = 1
        grad = model.backward(device.asarray(seed))
        return np.array(device.to_host(grad), dtype=np.float64, copy=True), np.array(chosen)


def saliency(model, x, target=None) -> tuple[np.ndarray, np.ndarray]:
    """(saliency maps (N, H, W), targets (N,)): the largest absolute input gradient of the target
    logit over the channels at each pixel (Simonyan et al. 2014)."""
    grad, chosen = score_gradient(model, x, target)
    return np.abs(grad).max(axis=1), chosen


def filters(model, layer=None) -> np.ndarray:
    """The weights (K, C, KH, KW) of convolution ``layer`` (default: the first one), host copy."""
    from .layers import Conv2d

    name = layer or next(iter(layer_names(model, Conv2d)), None)
    if name is None:
        raise ValueError(f"{type(model).__name__} has no convolution")
    conv = _module(model, name)
    if not isinstance(conv, Conv2d):
        raise ValueError(f"layer {name!r} is a {type(conv).__name__}, not a convolution")
    return np.array(model.device.to_host(conv.weight.data), copy=True)
