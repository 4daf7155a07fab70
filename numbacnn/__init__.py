"""numbacnn: a convolutional-network engine written from scratch with Numba.

import numbacnn as nc
model = nc.models.lenet5()
logits = model(x)              # x: float32 (N, 1, 28, 28)
"""

import os

# numba's OpenMP threads spin after each parallel region and steal the cores from the OpenBLAS
# threads that run the GEMMs next; passive waiting gives them back. Set before numba loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Fully passive waiting makes every parallel region pay for waking its threads from sleep, which
# at LeNet sizes costs more than the work inside it; a short spin (libgomp counts it in loop
# iterations, and it overrides the passive policy) catches the next region of a training step
# while still handing the cores to OpenBLAS during a GEMM (benchmarks/NOTES.md, entry 15).
os.environ.setdefault("GOMP_SPINCOUNT", "1000")
# The other half of the same fight: OpenBLAS's worker threads spin for a long while after each
# GEMM and slow the numba loops that follow (im2col, col2im); 2^4 cycles makes them sleep at once
# (benchmarks/NOTES.md, entry 5). OpenBLAS reads this when numpy first loads: it takes effect
# when numbacnn is imported before numpy (as the CLI does), or when exported in the shell.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import init, layers, losses, models, optim  # noqa: E402
from .device import Device, DeviceError, cuda_available, get_device  # noqa: E402
from .init import manual_seed  # noqa: E402
from .params import Parameter  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Device",
    "DeviceError",
    "Parameter",
    "cuda_available",
    "get_device",
    "init",
    "layers",
    "losses",
    "manual_seed",
    "models",
    "optim",
    "__version__",
]
