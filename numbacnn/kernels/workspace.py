"""Per-process scratch memory for kernels that need temporaries (im2col columns, GEMM results).

Kernels never allocate in the steady state: each named slot keeps one flat buffer per dtype that
grows to the largest request and is then handed out as views. A slot is only valid during one
kernel call; two arrays needed at the same time must use two slot names.
"""

import numpy as np

_slots = {}
_views = {}  # (slot key, shape) -> (buffer, view): the same view object for the same request


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
        for stale in [k for k in _views if k[0] == key]:  # views of the old buffer: let it go
            del _views[stale]
    # Reusing the view object matters on CUDA: numba types each new device array at its launch.
    shape = tuple(shape)
    cached = _views.get((key, shape))
    if cached is not None and cached[0] is buf:
        return cached[1]
    view = buf[:size].reshape(shape)
    _views[(key, shape)] = (buf, view)
    return view


def worker_scratch(name, tasks, shape, dtype):
    """(workers, buffer): the threads that share ``tasks`` independent tasks (at most numba's
    thread count, at least 1) and a scratch view (workers, *shape) on slot ``name``, one row per
    worker. A CPU kernel gives each worker a contiguous run of tasks (``prange(workers)``, as
    numba's static schedule would), so its temporaries are reused from task to task instead of
    allocated in each."""
    import numba

    workers = max(1, min(numba.get_num_threads(), tasks))
    return workers, scratch(name, (workers, *shape), dtype)


def release(prefix):
    """Release the scratch buffers whose slot names start with ``prefix``."""
    for key in [k for k in _slots if k[0].startswith(prefix)]:
        del _slots[key]
    for key in [k for k in _views if k[0][0].startswith(prefix)]:
        del _views[key]


def clear():
    """Release every scratch buffer (e.g. after benchmarking a very large shape)."""
    _slots.clear()
    _views.clear()
