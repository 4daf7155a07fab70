"""Weight files: numbacnn checkpoints (.npz) and safetensors files, read and written without
optional dependencies."""

from . import module_files  # noqa: F401  (registers Module.save and Module.load)
