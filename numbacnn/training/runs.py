"""Run folders: where a training run keeps its checkpoint, log and plots, and the rules that keep
one run from destroying another.

- A fresh run never overwrites another run's files: with the default folder (``runs/MODEL``) a
  taken folder gives way to the next free numbered one (``runs/MODEL-2``, ...); a folder named
  explicitly that holds a run is refused, naming ``--resume`` and ``--force``.
- A lock file (``.lock``, held with ``flock`` for the life of the process, so a killed run never
  leaves it stuck) refuses a second live run on the same folder.
- The folder is checked for writing before the first step, not after a whole epoch.
- Temporary checkpoint files left by a process killed while saving are removed.
"""

from __future__ import annotations

import glob
import os
import tempfile

from ..errors import RunFolderError

RUN_FILES = ("checkpoint.npz", "log.jsonl", "curves.png", "confusion.png")

__all__ = ["RUN_FILES", "RunFolder", "check_writable", "holds_a_run", "next_free_folder"]


def holds_a_run(folder: str) -> bool:
    """True when ``folder`` has a checkpoint or a log of some run."""
    return any(os.path.exists(os.path.join(folder, f)) for f in RUN_FILES[:2])


def next_free_folder(base: str) -> str:
    """``base`` if it holds no run, else the first of ``base-2``, ``base-3``, ... that holds none."""
    if not holds_a_run(base):
        return base
    n = 2
    while holds_a_run(f"{base}-{n}"):
        n += 1
    return f"{base}-{n}"


def check_writable(path: str) -> None:
    """RunFolderError unless ``path`` is (or can be made) a folder where a file can be created,
    written and removed: found before the first training step, not after an epoch."""
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=path)
        try:
            os.write(fd, b"0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise RunFolderError(f"cannot write to the run folder {path}: {e.strerror or e}") from None


class RunFolder:
    """The folder of one live run: locked, checked for writing, cleared of stale temporary files.

    ``fresh`` (a new run, not a resume) refuses a folder that holds another run unless ``force``,
    in which case that run's files are removed. Use as a context manager or call ``close()``.
    """

    def __init__(self, path: str, fresh: bool = True, force: bool = False):
        self.path = path
        self._lock = None
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise RunFolderError(f"cannot create the run folder {path}: {e.strerror or e}") from None
        if not os.path.isdir(path):
            raise RunFolderError(f"the run folder {path} is not a folder")
        self._acquire_lock()
        try:
            if fresh and holds_a_run(path):
                if not force:
                    raise RunFolderError(
                        f"{path} already holds a run (checkpoint or log). Continue it with "
                        f"--resume {os.path.join(path, 'checkpoint.npz')}, pick another --out, or pass "
                        f"--force to replace it"
                    )
                for name in RUN_FILES:
                    target = os.path.join(path, name)
                    if os.path.exists(target):
                        os.unlink(target)
            self.check_writable()
            self._remove_stale_temporaries()
        except BaseException:
            self.close()
            raise

    def _acquire_lock(self):
        import fcntl

        lock_path = os.path.join(self.path, ".lock")
        try:
            handle = open(lock_path, "a+")
        except OSError as e:
            raise RunFolderError(f"cannot write to the run folder {self.path}: {e.strerror or e}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise RunFolderError(
                f"another numbacnn run (pid {owner}) is using {self.path}; wait for it to finish or use another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def check_writable(self) -> None:
        check_writable(self.path)

    def _remove_stale_temporaries(self):
        # The lock is ours, so no live save is writing these: they are left by a killed process.
        for stale in glob.glob(os.path.join(self.path, ".ckpt-*.npz")):
            try:
                os.unlink(stale)
            except OSError:
                pass

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
