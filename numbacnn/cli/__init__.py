"""The ``numbacnn`` command line (click). Commands stay thin: parse, call the library, print."""
from . import bench, commands  # noqa: F401  (registers bench, train, evaluate, predict, datasets)
from .main import main

__all__ = ["main"]
