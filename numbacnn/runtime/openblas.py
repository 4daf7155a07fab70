"""The thread count of numpy's own OpenBLAS, which numbacnn's kernels no longer call but numpy
does (``np.matmul`` in the NumPy twins that run while the JIT cache is cold, and in user code).

numpy ships OpenBLAS (``libscipy_openblas64_``, 64-bit integers); its ``set_num_threads`` is found
in the loaded library through ctypes. Where no such library is found, ``available()`` is False.
"""

import ctypes

import numpy as np

__all__ = ["available", "get_threads", "set_threads"]

_found = None


def _library():
    """{"set": set_num_threads, "get": get_num_threads} of numpy's OpenBLAS, or {}."""
    global _found
    if _found is None:
        _found = {}
        np.ones(2) @ np.ones(2)  # make sure numpy's BLAS is loaded
        try:
            with open("/proc/self/maps") as f:
                paths = sorted({line.split()[-1] for line in f if "openblas64" in line.lower() and "/" in line})
        except OSError:
            paths = []
        for path in paths:
            lib = ctypes.CDLL(path)
            names = {"set": "scipy_openblas_set_num_threads64_", "get": "scipy_openblas_get_num_threads64_"}
            if all(hasattr(lib, n) for n in names.values()):
                _found = {key: getattr(lib, n) for key, n in names.items()}
                _found["get"].restype = ctypes.c_int
                break
    return _found


def available():
    """True when numpy's OpenBLAS (64-bit integer interface) was found."""
    return bool(_library())


def get_threads():
    return int(_library()["get"]())


def set_threads(n):
    _library()["set"](int(n))
