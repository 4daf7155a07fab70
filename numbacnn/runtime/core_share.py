"""Fair sharing of the CPU cores between numbacnn trainings that run at the same time.

Two trainings on one small machine, each with a thread per core for numba and for OpenBLAS, do
not slow down by half: OpenBLAS's threads wait for each other in short spins, and when the other
process holds the core every wait lasts a scheduler time slice, so each run collapses to a few
percent of its speed (benchmarks/NOTES.md, entry 17). With one thread each they share the machine.

Each training registers its process in a folder of the user's (a file per process, locked for the
life of the process, so a killed run never counts), and every few seconds gives itself
``cores // runs`` threads, numba's and OpenBLAS's alike; alone again, it takes all the cores back.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time

__all__ = ["CoreShare", "live_runs", "set_blas_threads"]


def _registry():
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"numbacnn-runs-{os.getuid()}")


def live_runs(folder: str | None = None) -> int:
    """How many numbacnn trainings hold a registration in ``folder`` (stale files are removed)."""
    folder = folder or _registry()
    count = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.startswith("."):  # a registration being made
            continue
        path = os.path.join(folder, name)
        try:
            with open(path, "a+") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    count += 1  # locked: a live run (this process's own file included)
                    continue
                os.unlink(path)  # nobody holds it: left by a process that is gone
        except OSError:
            continue
    return count


def set_blas_threads(n: int) -> bool:
    """Set the thread count of the OpenBLAS numpy uses; False where none is found."""
    from . import openblas

    if not openblas.available():
        return False
    openblas.set_threads(n)
    return True


def _set_threads(n):
    import numba

    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    set_blas_threads(n)


class CoreShare:
    """This process's registration; ``rebalance()`` (cheap, call it often) adjusts the threads.

    ``cores``: the threads a run alone may use (default: numba's thread count); ``name``: the
    registration's file name (default: the process id).
    """

    def __init__(
        self, folder: str | None = None, cores: int | None = None, every_s: float = 2.0, name: str | None = None
    ):
        import numba

        self.folder = folder or _registry()
        self.cores = int(cores or numba.config.NUMBA_NUM_THREADS)
        self.every_s = every_s
        self.threads = self.cores
        self._last = -1e9
        self._handle = None
        try:
            os.makedirs(self.folder, exist_ok=True)
            # Locked under a hidden name, then renamed: nobody sees it unlocked and removes it.
            name = name or str(os.getpid())
            final = os.path.join(self.folder, name)
            temporary = os.path.join(self.folder, f".{name}")
            self._handle = open(temporary, "a+")
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temporary, final)
            self._path = final
        except OSError:  # no shared folder: share nothing, lose nothing
            self.close()

    def rebalance(self, force: bool = False) -> int:
        """Threads for this run now: cores // live runs (at least 1). Returns the count."""
        now = time.monotonic()
        if self._handle is None or (not force and now - self._last < self.every_s):
            return self.threads
        self._last = now
        threads = max(1, self.cores // max(1, live_runs(self.folder)))
        if threads != self.threads:
            _set_threads(threads)
            self.threads = threads
        return threads

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            try:
                os.unlink(self._path)
            except (OSError, AttributeError):
                pass
        if self.threads != self.cores:
            _set_threads(self.cores)
            self.threads = self.cores

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
