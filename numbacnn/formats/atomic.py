"""Atomic file writes: the bytes go to a temporary file in the target's folder, are flushed to
disk, and the file is renamed into place. A crash or Ctrl-C never leaves a half-written file
where a good one was."""

from __future__ import annotations

import os
import tempfile

__all__ = ["atomic_write"]


def atomic_write(path, write, suffix=""):
    """Call ``write(f)`` on a binary file that becomes ``path`` once complete; returns ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
