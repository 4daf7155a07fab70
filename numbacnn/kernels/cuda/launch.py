"""Launch helpers shared by the CUDA kernels: grid sizes, the host-array guard, flat views.

Every public CUDA kernel calls :func:`require_device` on its array arguments first. numba would
silently copy a host (numpy) array to the GPU and back at every launch; here that is an error
that names the argument, on a real GPU and in the simulator alike (the simulator never warns).

In the simulator (``NUMBA_ENABLE_CUDASIM=1``) each GPU thread runs as Python, so launches use few
threads and the grid-stride loops of the kernels do the rest; on a GPU the grid fills every SM.
"""

import os
import weakref

import numpy as np
from numba import cuda
from numba.core import config

from ...errors import DeviceError

SIMULATOR = bool(config.ENABLE_CUDASIM)
THREADS = 16 if SIMULATOR else 256  # threads per block for 1-D (grid-stride) kernels
REDUCE_THREADS = 4 if SIMULATOR else 256  # threads of a block reduction (a power of two)
_sm_count = None


def _quiet_low_occupancy_warnings():
    """numba warns at every launch of fewer than 128 blocks. Our grids are sized to the work on
    purpose (a bias of 16 values needs one block), so the warning would only be noise; it stays
    on where the user asked for it with NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS."""
    if "NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS" in os.environ:
        return
    try:
        from numba.cuda.core import config as cuda_config
    except ImportError:  # older numba-cuda: the setting lives in numba's config
        cuda_config = config
    cuda_config.CUDA_LOW_OCCUPANCY_WARNINGS = 0


_quiet_low_occupancy_warnings()


def sm_count():
    """Streaming multiprocessors of the current GPU (a small stand-in in the simulator)."""
    global _sm_count
    if _sm_count is None:
        _sm_count = 2 if SIMULATOR else int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    return _sm_count


def grid_1d(n):
    """(blocks, threads) for a grid-stride loop over n items: enough blocks to fill the GPU
    (32 per SM), never more than the items need. The simulator gets one block per "SM": its cost
    is per thread, and the grid-stride loop covers any n."""
    most = sm_count() if SIMULATOR else 32 * sm_count()
    blocks = max(1, min(-(-n // THREADS), most))
    return blocks, THREADS


def launch_1d(kernel, n, *args):
    """Run a grid-stride ``kernel(*args)`` over n items (nothing to do when n == 0)."""
    if n > 0:
        kernel[grid_1d(n)](*args)


def require_device(where, **arrays):
    """DeviceError unless every array given (None allowed) is a CUDA device array."""
    for name, a in arrays.items():
        if isinstance(a, np.ndarray):
            raise DeviceError(
                f"{where}: '{name}' is a host (numpy) array of shape {a.shape}; CUDA "
                f"kernels take device arrays (get_device('cuda').asarray(x)). A host "
                f"array would be copied to the GPU and back at every launch."
            )
        if a is not None and not hasattr(a, "copy_to_host"):
            raise TypeError(f"{where}: '{name}' must be a CUDA device array, got {type(a).__name__}")


# id(array) -> (weak reference to the array, {shape: view of it}). A fresh reshaped view is costly
# at launch on a real GPU: numba builds the view and then works out its type again, where a view
# it has seen before is typed already (benchmarks/NOTES.md, entry 12). Layers reuse their buffers
# from step to step, so their views are made once. An entry goes with its array.
_views = {}


def _forget(key, ref):
    if _views.get(key, (None,))[0] is ref:
        del _views[key]


def view(a, *shape):
    """Reshaped view (shape) of the C-contiguous device array a, made once and then reused."""
    key = id(a)
    entry = _views.get(key)
    if entry is None or entry[0]() is not a:
        try:
            ref = weakref.ref(a, lambda r, key=key: _forget(key, r))
        except TypeError:  # an array type that takes no weak references
            return a.reshape(*shape)
        entry = _views[key] = (ref, {})
    views = entry[1]
    v = views.get(shape)
    if v is None:
        v = views[shape] = a.reshape(*shape)
    return v


def flat(a):
    """1-D view of a C-contiguous device array (cached, see :func:`view`)."""
    return view(a, a.size)


def device_empty(n, dtype):
    """Allocator for the scratch workspace (``kernels.workspace.scratch``)."""
    return cuda.device_array(n, dtype)
