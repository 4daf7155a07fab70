"""numpy's own OpenBLAS, called from inside numba kernels: ``gemm`` for the one-pool convolution.

numpy ships OpenBLAS (``libscipy_openblas64_``, 64-bit integers). Its Fortran ``sgemm``/``dgemm``
are found in the loaded library and handed to ``@njit`` kernels as ctypes function pointers, so
numba's threads can each run a single-threaded GEMM on their own chunk of samples: one thread
pool, where ``np.matmul`` would start OpenBLAS's own threads to fight numba's (benchmarks/NOTES.md,
entry 23). Where no such library is found, ``available()`` is False and convolutions keep the
``np.matmul`` path.
"""

import ctypes

import numpy as np
from numba import njit

__all__ = ["available", "gemm_for", "get_threads", "set_threads"]

_P = ctypes.c_void_p
_GEMM = ctypes.CFUNCTYPE(None, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P)
_found = None


def _library():
    """{"s": sgemm, "d": dgemm, "set": set_num_threads, "get": get_num_threads} of numpy's OpenBLAS."""
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
            names = {"s": "scipy_sgemm_64_", "d": "scipy_dgemm_64_", "set": "scipy_openblas_set_num_threads64_",
                     "get": "scipy_openblas_get_num_threads64_"}  # fmt: skip
            if all(hasattr(lib, n) for n in names.values()):
                _found = {key: getattr(lib, n) for key, n in names.items()}
                _found["s"] = _GEMM(ctypes.cast(_found["s"], ctypes.c_void_p).value)
                _found["d"] = _GEMM(ctypes.cast(_found["d"], ctypes.c_void_p).value)
                _found["get"].restype = ctypes.c_int
                break
    return _found


def available():
    """True when numpy's OpenBLAS (64-bit integer interface) was found."""
    return bool(_library())


def gemm_for(dtype):
    """The Fortran gemm (sgemm or dgemm) for ``dtype``, as a ctypes pointer for ``call_gemm``."""
    return _library()["s" if np.dtype(dtype) == np.float32 else "d"]


def get_threads():
    return int(_library()["get"]())


def set_threads(n):
    _library()["set"](int(n))


@njit(inline="always")
def call_gemm(gemm, args, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """Fortran (column-major) C (m x n) = op(A) op(B) + beta C, alpha 1.

    ``args``: this thread's scratch, an int64 array of 12 (the integers and two characters by
    reference, as Fortran wants them); a, b, c: C-contiguous arrays whose memory holds the
    column-major matrices. ``beta`` is 0 or 1.
    """
    args[0] = trans_a
    args[1] = trans_b
    args[2] = m
    args[3] = n
    args[4] = k
    args[5] = lda
    args[6] = ldb
    args[7] = ldc
    scalars = args[8:12].view(a.dtype)  # alpha, beta in the arrays' dtype
    scalars[0] = 1
    scalars[scalars.size // 2] = beta
    gemm(args[0:].ctypes, args[1:].ctypes, args[2:].ctypes, args[3:].ctypes, args[4:].ctypes,
         scalars[0:].ctypes, a.ctypes, args[5:].ctypes, b.ctypes, args[6:].ctypes,
         scalars[scalars.size // 2:].ctypes, c.ctypes, args[7:].ctypes)  # fmt: skip
