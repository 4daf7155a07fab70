"""Thread settings that must be made before numba and OpenBLAS load.

numba's parallel loops and numpy's own OpenBLAS products (the NumPy twins of a cold start, user
code) take turns on the same cores. Their threads must hand the cores over quickly when idle, and
both libraries read how long to wait from the environment once, when they load
(benchmarks/NOTES.md, entries 1, 5 and 15).
"""

import os

# (variable, value): see configure().
DEFAULTS = (("OMP_WAIT_POLICY", "PASSIVE"), ("GOMP_SPINCOUNT", "1000"), ("OPENBLAS_THREAD_TIMEOUT", "4"))

__all__ = ["DEFAULTS", "configure"]


def configure():
    """Set the defaults the user has not set, before numba or numpy load (called on import).

    - ``OMP_WAIT_POLICY=PASSIVE``: numba's OpenMP threads sleep when idle instead of spinning
      through the GEMM that follows; ``GOMP_SPINCOUNT=1000``: a short spin first, so the back-to-back
      parallel regions of a training step do not each pay for waking the threads.
    - ``OPENBLAS_THREAD_TIMEOUT=4``: OpenBLAS's threads sleep at once after a GEMM (read when numpy
      first loads: import numbacnn before numpy, as the CLI does).

    If an OpenMP runtime is already loaded (``import torch`` first), these settings come too late
    for it. That once mattered, when its spinning threads fought OpenBLAS's inside every training
    step (benchmarks/NOTES.md, entries 18 and 44); no step calls OpenBLAS now, so numba keeps its
    OpenMP threads either way.
    """
    for name, value in DEFAULTS:
        os.environ.setdefault(name, value)
