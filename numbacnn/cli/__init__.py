"""The ``numbacnn`` command line (click). Commands stay thin: parse, call the library, print."""

from . import bench_commands, export_commands, inspect_commands, run_commands, train_command  # noqa: F401  (register)
from .main import main

__all__ = ["main"]
