"""numbacnn: a convolutional-network engine written from scratch with Numba.

import numbacnn as nc
model = nc.models.lenet5()
logits = model(x)              # x: float32 (N, 1, 28, 28)
"""

from .runtime.threads import configure as _configure_threads
from .version import __version__

# Thread settings read by numba's OpenMP and by OpenBLAS when they load: before anything else.
_configure_threads()
# Compiled kernels cached where a change to any kernel source invalidates them (jit_cache.py).
from .runtime import jit_cache  # noqa: E402

jit_cache.install()

from . import (  # noqa: E402
    adversarial,
    data,
    distributed,
    formats,  # noqa: E402, F401  (registers Module.save and Module.load: formats/module_files.py)
    init,
    inspect,
    layers,
    losses,
    models,
    onnx,
    optim,
    training,
)
from .init import manual_seed  # noqa: E402
from .layers.params import Parameter  # noqa: E402
from .runtime.device import Device, DeviceError  # noqa: E402
from .runtime.devices import cuda_available, get_device  # noqa: E402

__all__ = [
    "Device",
    "DeviceError",
    "Parameter",
    "adversarial",
    "cuda_available",
    "data",
    "distributed",
    "get_device",
    "init",
    "inspect",
    "layers",
    "losses",
    "manual_seed",
    "models",
    "onnx",
    "optim",
    "training",
    "__version__",
]
