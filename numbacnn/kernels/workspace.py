"""Per-process scratch memory for kernels that need temporaries (im2col columns, GEMM results).

Kernels never allocate in the steady state: each named slot keeps one flat buffer per dtype that
grows to the largest request and is then handed out as views. A slot is only valid during one
kernel call; two arrays needed at the same time must use two slot names.
"""
import numpy as np

_slots = {}


def scratch(name, shape, dtype, allocate=np.empty):
    """A C-contiguous view of ``shape`` and ``dtype`` on the reusable buffer ``name``.

    ``allocate(n, dtype)`` makes a new flat buffer when the current one is too small; the CUDA
    backend passes its own device allocator (slot names are kept apart per allocator).
    """
    dtype = np.dtype(dtype)
    size = 1
    for s in shape:
        size *= s
    key = (name, dtype.str, allocate)
    buf = _slots.get(key)
    if buf is None or buf.shape[0] < size:
        buf = allocate(max(size, 1), dtype)
        _slots[key] = buf
    return buf[:size].reshape(shape)


def clear():
    """Release every scratch buffer (e.g. after benchmarking a very large shape)."""
    _slots.clear()
