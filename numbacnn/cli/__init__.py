"""The ``numbacnn`` command line (click). Commands stay thin: parse, call the library, print."""
from .main import main

__all__ = ["main"]
