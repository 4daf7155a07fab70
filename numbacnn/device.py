"""Devices: where arrays live and which kernel backend runs on them.

``get_device("cpu" | "cuda" | "auto")`` returns a :class:`Device`. Layers allocate through
``device.empty``/``zeros``, move data with ``asarray``/``to_host`` and call kernels through
``device.ops`` (``numbacnn.kernels.cpu`` or ``numbacnn.kernels.cuda``), never a backend directly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from .errors import DeviceError

__all__ = ["CPU", "CPUDevice", "Device", "DeviceError", "cuda_available", "device_of", "get_device"]


class Device:
    """A place for arrays plus the kernels that run there. Compare devices with ``==``."""

    name = "?"

    @property
    def ops(self):
        raise NotImplementedError

    def empty(self, shape: Sequence[int] | int, dtype: DTypeLike = np.float32) -> Any:
        raise NotImplementedError

    def zeros(self, shape: Sequence[int] | int, dtype: DTypeLike = np.float32) -> Any:
        raise NotImplementedError

    def asarray(self, array: Any, dtype: DTypeLike | None = None, out: Any = None) -> Any:
        """A C-contiguous array on this device (no copy when it already is one).

        ``out``: a buffer of this device to copy host data into instead of allocating (CUDA uses
        it for per-batch uploads; on the CPU host data is already in place and ``out`` is unused).
        """
        raise NotImplementedError

    def to_host(self, array: Any) -> np.ndarray:
        """A numpy array with the contents of ``array``."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued work: call before reading a clock."""

    def owns(self, array: Any) -> bool:
        """True when ``array`` lives on this device."""
        raise NotImplementedError

    def same_memory(self, a: Any, b: Any) -> bool:
        """True when arrays ``a`` and ``b`` of this device start at the same address (a view and
        the storage it was cut from, say)."""
        raise NotImplementedError

    def __eq__(self, other):
        return isinstance(other, Device) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return f"Device({self.name!r})"

    def __str__(self):
        return self.name


class CPUDevice(Device):
    name = "cpu"
    # A kernel namespace used instead of kernels.cpu (quick_start.py sets it while the compiled
    # kernels are being built).
    ops_override = None

    @property
    def ops(self):
        if self.ops_override is not None:
            return self.ops_override
        from .kernels import cpu

        return cpu

    def empty(self, shape, dtype=np.float32):
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype=np.float32):
        return np.zeros(shape, dtype=dtype)

    def asarray(self, array, dtype=None, out=None):
        if not isinstance(array, np.ndarray) and hasattr(array, "copy_to_host"):
            array = array.copy_to_host()
        if out is not None:  # copy into the given array, as the CUDA device does
            out[...] = array
            return out
        return np.ascontiguousarray(array, dtype=dtype)

    def to_host(self, array):
        if isinstance(array, np.ndarray):
            return array
        return array.copy_to_host()

    def owns(self, array):
        return isinstance(array, np.ndarray)

    def same_memory(self, a, b):
        return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


CPU = CPUDevice()


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
