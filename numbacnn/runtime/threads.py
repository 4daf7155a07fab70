"""Thread settings that must be made before numba and OpenBLAS load, and the check for a process
where another library loaded its OpenMP runtime first (``import torch`` before numbacnn).

numba's parallel loops and OpenBLAS's GEMMs take turns on the same cores. Their threads must hand
the cores over quickly when idle, and both libraries read how long to wait from the environment
once, when they load (benchmarks/NOTES.md, entries 1, 5 and 15).
"""

import os
import sys
import warnings

# (variable, value): see configure().
DEFAULTS = (("OMP_WAIT_POLICY", "PASSIVE"), ("GOMP_SPINCOUNT", "1000"), ("OPENBLAS_THREAD_TIMEOUT", "4"))

__all__ = ["DEFAULTS", "configure", "foreign_openmp"]


def foreign_openmp():
    """The path of an OpenMP runtime already loaded in this process (or None)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                name = line.rsplit("/", 1)[-1].strip()
                if "/" in line and (name.startswith("libgomp") or name.startswith("libiomp")):
                    return line.split(None, 5)[-1].strip()
    except OSError:
        pass
    return None


def configure():
    """Set the defaults the user has not set, before numba or numpy load (called on import).

    - ``OMP_WAIT_POLICY=PASSIVE``: numba's OpenMP threads sleep when idle instead of spinning
      through the GEMM that follows; ``GOMP_SPINCOUNT=1000``: a short spin first, so the back-to-back
      parallel regions of a training step do not each pay for waking the threads.
    - ``OPENBLAS_THREAD_TIMEOUT=4``: OpenBLAS's threads sleep at once after a GEMM (read when numpy
      first loads: import numbacnn before numpy, as the CLI does).

    If an OpenMP runtime is already loaded (``import torch`` first) these come too late: its
    threads spin after every region and numbacnn ran 20x slower. Unless the user exported a wait
    policy, numba then uses its own workqueue threads instead, and one warning says how to get
    full speed.
    """
    user_policy = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    for name, value in DEFAULTS:
        os.environ.setdefault(name, value)
    loaded = foreign_openmp()
    if loaded is None or user_policy or "NUMBA_THREADING_LAYER" in os.environ:
        return
    if "numba" in sys.modules:
        import numba

        numba.config.THREADING_LAYER = "workqueue"
    os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    warnings.warn(
        f"numbacnn: an OpenMP runtime ({loaded}) was loaded before numbacnn, with threads that spin "
        f"and steal the cores from numbacnn's; numbacnn uses numba's workqueue threads instead, which "
        f"is slower. For full speed import numbacnn before torch, or start Python with "
        f"OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=1000 exported.",
        RuntimeWarning,
        stacklevel=3,
    )
