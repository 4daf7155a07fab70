"""What this process runs on: versions, CPU threads and threading layer, the thread settings
numbacnn makes, and the CUDA devices (or why there are none). ``numbacnn info`` prints it."""

import os
import platform

__all__ = ["facts"]


def facts() -> dict:
    """{name: value} describing this process's numbacnn, numba, threads and GPUs."""
    import numba
    import numpy as np

    from ..version import __version__
    from .device import CPU
    from .devices import cuda_available

    # numba picks its threading layer at the first parallel call: make one, then ask.
    CPU.ops.fill(np.empty(4, np.float32), 0)
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = numba.config.THREADING_LAYER
    out = {
        "numbacnn": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "cpu_threads": numba.config.NUMBA_NUM_THREADS,
        "threading_layer": layer,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT", ""),
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT", ""),
        "cuda_simulator": os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1",
    }
    from .jit_cache import status

    cache = status()
    out["jit_cache"] = cache["path"]
    out["jit_cache_warm"] = f"{cache['cached']} of {cache['functions']} kernels compiled for these sources"
    from . import quick_start, warm_keys

    known = len(warm_keys.read_warm_keys(warm_keys.warm_keys_path()))
    out["quick_start"] = (
        f"on: kernel signatures not yet compiled start on NumPy ({known} known compiled)"
        if quick_start.enabled()
        else f"off ({quick_start.ENV}=0): a cold cache compiles before the first step"
    )
    if out["cuda_simulator"]:
        out["cuda_devices"] = ["numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1: kernels run as Python)"]
    elif cuda_available():
        out["cuda_devices"] = _gpu_names()
    else:
        out["cuda_devices"] = []
        out["cuda_unavailable_reason"] = "numba.cuda.is_available() is False (no NVIDIA driver/GPU found)"
    return out


def _gpu_names():
    """'NAME (compute capability X.Y)' for every GPU numba can see."""
    from numba import cuda

    names = []
    for gpu in cuda.gpus:
        with gpu:
            dev = cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
            names.append(f"{name} (compute capability {dev.compute_capability[0]}.{dev.compute_capability[1]})")
    return names
