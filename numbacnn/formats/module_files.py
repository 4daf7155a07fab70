"""A module's weights in files: ``model.save(path)`` and ``model.load(path)``.

Layers import nothing above them, so ``Module.save`` and ``Module.load`` only delegate to the
functions here, which this module registers on ``Module`` when it is imported (``numbacnn``
imports it: the methods always work).
"""

from __future__ import annotations

from ..layers.module import Module
from .safetensors import load_state, save_safetensors

__all__ = ["load_module", "save_module"]


def save_module(module, path) -> str:
    """Write ``module``'s weights (``state_dict()``: PyTorch key names, the model's dtype) to
    ``path``, a ``.safetensors`` file (readable by ``safetensors.torch.load_file`` and then
    ``torch.nn.Module.load_state_dict``); returns the path."""
    if not str(path).endswith(".safetensors"):
        raise ValueError(f"save: {path} should end in .safetensors (the weights format numbacnn writes)")
    return save_safetensors(path, module.state_dict(), {"format": "pt", "producer": "numbacnn"})


def load_module(module, path, strict: bool = True):
    """Load weights into ``module`` from a ``.safetensors`` file (as :func:`save_module` or PyTorch
    writes them) or a numbacnn checkpoint (``.npz``); returns the module. Missing, unexpected and
    mis-shaped keys are reported as by ``load_state_dict`` (KeyError / ValueError, the path first)."""
    try:
        state = load_state(path)
    except ValueError as e:
        raise ValueError(f"load: {e}") from None
    try:
        return module.load_state_dict(state, strict=strict)
    except (KeyError, ValueError, TypeError) as e:
        raise type(e)(f"{path}: {e.args[0]}") from None


Module.weight_files = (save_module, load_module)
