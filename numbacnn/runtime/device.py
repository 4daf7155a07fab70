"""Devices: where arrays live and which kernel backend runs on them (the interface and the CPU;
``cuda_device.py`` holds the CUDA device, ``devices.py`` picks one by name).

``get_device("cpu" | "cuda" | "auto")`` returns a :class:`Device`. Layers allocate through
``device.empty``/``zeros``, move data with ``asarray``/``to_host`` and call kernels through
``device.ops`` (``numbacnn.kernels.cpu`` or ``numbacnn.kernels.cuda``), never a backend directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ..errors import DeviceError

__all__ = ["CPU", "CPUDevice", "Device", "DeviceError"]


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
    # A kernel namespace used instead of kernels.cpu (runtime/quick_start.py sets it while the compiled
    # kernels are being built).
    ops_override = None

    @property
    def ops(self):
        if self.ops_override is not None:
            return self.ops_override
        from ..kernels import cpu

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
