"""The CUDA device: arrays are numba device arrays, kernels come from ``numbacnn.kernels.cuda``.

Imported only when a GPU (or numba's simulator) is asked for, so ``import numbacnn`` works on
machines without a CUDA driver. Data moves between host and GPU only where the caller says so:
``asarray`` (host -> device, into a reusable ``out`` buffer when given) and ``to_host``.
"""

import numpy as np
from numba import cuda

from .device import Device, DeviceError


def is_device_array(array):
    """True for numba CUDA device arrays (and the simulator's stand-ins for them)."""
    return not isinstance(array, np.ndarray) and hasattr(array, "copy_to_host")


class CUDADevice(Device):
    name = "cuda"

    @property
    def ops(self):
        from ..kernels import cuda as cuda_kernels

        return cuda_kernels

    def empty(self, shape, dtype=np.float32):
        return cuda.device_array(shape, dtype=dtype)

    def zeros(self, shape, dtype=np.float32):
        array = self.empty(shape, dtype)
        if array.size:
            self.ops.fill(array, 0)
        return array

    def asarray(self, array, dtype=None, out=None):
        """A C-contiguous device array with the contents of ``array`` (host or device).

        A device array of the right dtype is returned as it is. With ``out`` (a device array of
        the same shape and dtype) a host array is copied into it instead of into new memory: the
        training loop uploads every batch into one buffer this way.
        """
        if is_device_array(array):
            if not array.is_c_contiguous():
                raise ValueError("CUDA arrays must be C-contiguous")
            if dtype is None or np.dtype(dtype) == array.dtype:
                return array
            array = array.copy_to_host()
        host = np.ascontiguousarray(array, dtype=dtype)
        if out is not None:
            if tuple(out.shape) != host.shape or out.dtype != host.dtype:
                raise ValueError(
                    f"asarray: out has shape {tuple(out.shape)} {out.dtype}, the data {host.shape} {host.dtype}"
                )
            out.copy_to_device(host)
            return out
        return cuda.to_device(host)

    def to_host(self, array):
        if isinstance(array, np.ndarray):
            return array
        return array.copy_to_host()

    def synchronize(self):
        cuda.synchronize()

    def owns(self, array):
        return is_device_array(array)

    def same_memory(self, a, b):
        return address(a) == address(b)


def address(array):
    """The device address of ``array``'s first element (to test whether two views share memory)."""
    interface = getattr(array, "__cuda_array_interface__", None)
    if interface is not None:
        return interface["data"][0]
    host_view = getattr(array, "_ary", None)  # the simulator keeps device arrays in numpy memory
    if host_view is None:
        raise DeviceError(f"not a CUDA device array: {type(array).__name__}")
    return host_view.__array_interface__["data"][0]


CUDA = CUDADevice()
