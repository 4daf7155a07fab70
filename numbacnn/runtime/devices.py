"""Which device: ``get_device("cpu" | "cuda" | "auto")``, ``device_of(array)`` and
``cuda_available()``. The CUDA device is imported only when asked for, so ``import numbacnn`` works
on machines without a CUDA driver.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .device import CPU, Device, DeviceError

__all__ = ["cuda_available", "device_of", "get_device"]


def cuda_available() -> bool:
    """True when a CUDA GPU (or numba's simulator, NUMBA_ENABLE_CUDASIM=1) can run kernels.

    Never raises, even with no driver installed: ``numba.cuda.is_available()`` is the clean probe.
    """
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # a broken driver install must not break "import numbacnn" or "auto"
        return False


_CUDA_HELP = (
    "CUDA device requested but no usable GPU was found (numba.cuda.is_available() is "
    "False). Install the GPU extra with `pip install numbacnn[cuda]` on a machine with an "
    "NVIDIA driver, or run the CUDA kernels on the CPU in numba's simulator by setting "
    "NUMBA_ENABLE_CUDASIM=1 before starting Python (slow: one Python call per GPU "
    "thread). Use --device cpu (or get_device('cpu')) to train on the CPU."
)


def get_device(spec: str | Device = "auto") -> Device:
    """The device named by ``spec``: "cpu", "cuda", "auto" (CUDA when available), or a Device."""
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"device must be 'cpu', 'cuda', 'auto' or a Device, got {spec!r}")
    key = spec.strip().lower()
    if key == "cpu":
        return CPU
    if key in ("cuda", "gpu", "cuda:0"):
        if not cuda_available():
            raise DeviceError(_CUDA_HELP)
        from .cuda_device import CUDA

        return CUDA
    if key == "auto":
        # The simulator counts as "available" to numba but is far too slow to pick implicitly.
        if cuda_available() and os.environ.get("NUMBA_ENABLE_CUDASIM", "0") != "1":
            from .cuda_device import CUDA

            return CUDA
        return CPU
    raise ValueError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'auto'")


def device_of(array: Any) -> Device:
    """The device that holds ``array`` (CPU for numpy arrays, CUDA for numba device arrays)."""
    if isinstance(array, np.ndarray):
        return CPU
    if hasattr(array, "copy_to_host"):
        from .cuda_device import CUDA

        return CUDA
    raise TypeError(f"expected a numpy or CUDA device array, got {type(array).__name__}")
