"""Quick start's compiler: one background process per JIT cache, shared by every training process
that uses the cache (``tools/kernel_compiler.py`` is the process itself).

Runs started back to back used to start a compiler each, and the compilers fought one another and
the trainings for the cores. Now a process that needs a kernel signature compiled writes a
request file into the cache's queue (``<warm-keys file>.requests/``) and makes sure a compiler is
running: the compiler holds an exclusive lock on ``<warm-keys file>.lock`` for as long as it
lives. A process that finds the lock free takes it, starts the compiler and hands it the locked
descriptor, so there is no moment at which a second one could start. The compiler takes requests
until the queue has stayed empty a few seconds; it adds each compiled signature to the warm-keys
file (or, when one fails, writes a ``.fail`` note beside the request) and deletes the request.
A process learns the answers from those files, and starts a compiler again if its requests are
still waiting and none is running (one that ended just as a request arrived, or one that died).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import subprocess
import sys

__all__ = ["LOCK_FD_ENV", "KernelCompiler", "queue_paths"]

LOCK_FD_ENV = "NUMBACNN_COMPILER_LOCK_FD"  # the locked descriptor a started compiler inherits
MAX_FRUITLESS_STARTS = 3  # compilers started in a row that answered nothing: this process gives up


def queue_paths(warm_keys_path):
    """(lock file, request folder) of the cache whose warm-keys file is ``warm_keys_path``."""
    return warm_keys_path + ".lock", warm_keys_path + ".requests"


def _request_name(key):
    return hashlib.sha256(repr(key).encode()).hexdigest()[:32]


class KernelCompiler:
    """This process's side of the cache's compiler: requests sent, answers read, the process
    started when none runs. ``command`` starts a compiler (tests substitute their own)."""

    def __init__(self, warm_keys_path, command=None):
        self.lock_path, self.queue = queue_paths(warm_keys_path)
        self.command = list(command or (sys.executable, "-m", "numbacnn.tools.kernel_compiler", warm_keys_path))
        self.failed = []  # (target, message)
        self.started = []  # the compiler processes this process started (Popen)
        self._fruitless = 0  # starts since the last answer
        self._pending = {}  # key -> request name

    def submit(self, key, target, specs):
        """Queue ``key`` for compiling; False when it cannot be (no compiler can be started, an
        unwritable cache): the caller then compiles it itself."""
        if key in self._pending:
            return True
        name = _request_name(key)
        try:
            os.makedirs(self.queue, exist_ok=True)
            request = os.path.join(self.queue, name + ".req")
            if not os.path.exists(request):
                temporary = f"{request}.{os.getpid()}.tmp"
                with open(temporary, "wb") as f:
                    pickle.dump((key, target, specs), f)
                os.replace(temporary, request)
        except OSError as error:
            self.failed.append((target, f"cannot queue it in {self.queue}: {error}"))
            return False
        self._pending[key] = name
        return self._ensure_running()

    def running(self):
        """Whether a compiler holds this cache's lock."""
        fd = self._open_lock()
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing it also releases a lock it took
        return False

    def _open_lock(self):
        try:
            os.makedirs(os.path.dirname(self.lock_path), exist_ok=True)
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None

    def _ensure_running(self):
        """Start a compiler unless one runs; False when none could be started."""
        fd = self._open_lock()
        if fd is None:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True  # one is running: it will find the request
            if self._fruitless >= MAX_FRUITLESS_STARTS:
                return False
            return self._start(fd)
        finally:
            os.close(fd)  # the started compiler keeps the lock through its own copy

    def _start(self, locked_fd):
        env = dict(os.environ)
        # One thread: the compiler must leave the cores to the trainings it warms up for.
        env.update(NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", NUMBACNN_QUICK_START="0")
        env[LOCK_FD_ENV] = str(locked_fd)
        # This very numbacnn first on the path, whatever the working folder or installs elsewhere.
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join([here] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        try:
            process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                pass_fds=(locked_fd,),
                start_new_session=True,  # Ctrl-C in the terminal stops the training, not the compiler
            )
        except OSError as error:
            self.failed.append(("compiler process", str(error)))
            return False
        self.started.append(process)
        self._fruitless += 1
        return True

    def poll(self, warm):
        """(key, compiled) for the requests answered since the last poll; ``warm()`` gives the
        warm-keys set. Compiled, failed (a ``.fail`` note), or given up (a compiler that keeps
        ending without answering): the failed and given up compile in this process on first use."""
        answered = []
        for key, name in list(self._pending.items()):
            base = os.path.join(self.queue, name)
            if key in warm():
                answered.append((key, True))
            elif os.path.exists(base + ".fail"):
                try:
                    with open(base + ".fail") as f:
                        message = f.read().strip()
                except OSError:
                    message = "failed"
                self.failed.append((key[0], message))
                answered.append((key, False))
            elif not os.path.exists(base + ".req"):  # answered just now, or the keys file is unwritable
                answered.append((key, key in warm()))
        for key, _ in answered:
            del self._pending[key]
        if answered:
            self._fruitless = 0
        if self._pending and not self.running() and not self._ensure_running():
            answered += [(key, False) for key in self._pending]  # nobody will answer them
            self._pending.clear()
        return answered

    def stop(self):
        """Kill the compilers this process started (tests; a process that just exits lets them
        finish the queue for the next run)."""
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()
        self.started = []
