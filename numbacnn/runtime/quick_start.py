"""Quick start: a cold JIT cache does not hold up the first training step.

Compiling numbacnn's kernels takes tens of seconds the first time (``benchmarks/NOTES.md``,
entry 20); afterwards they load from the cache in milliseconds. While a :class:`Warmup` is active,
every CPU kernel call goes through a router that looks at the call's signature (kernel; the
arguments' dtypes, layouts and shapes past the batch dimension; the values of integer
hyper-parameters, which choose the compiled code; other scalars' types):

* a signature whose compiled code is known to be in the cache (the warm-keys file next to it)
  runs the compiled kernel, as always;
* any other runs the kernel's NumPy twin (``kernels/npy``: same contract, nothing to compile),
  and the signature is sent to a compiler process (``tools/kernel_compiler.py``), which calls the
  compiled kernel on zero-filled arrays of the same shapes and so fills the cache. When it says
  done, the next call of that signature runs the compiled kernel, loaded from the cache.

So the first step starts at once on the NumPy kernels, each kernel moves to its compiled form as
soon as that exists, and once nothing is left to compile the router steps aside (``settle``) and
calls go straight to ``kernels.cpu`` again. The NumPy twins round differently in the last bits:
a run that started cold is not bitwise the run a warm cache gives. ``NUMBACNN_QUICK_START=0`` (or
``Trainer(quick_start=False)``) compiles in the training process instead, as before, and records
the signatures it compiled in the warm-keys file, as the compiler process does.
"""

from __future__ import annotations

import collections
import inspect
import json
import os
import pickle
import subprocess
import sys
import threading

import numpy as np

from ..kernels import PER_CALL_SCALARS
from .device import CPU

ENV = "NUMBACNN_QUICK_START"
__all__ = [
    "ENV",
    "Warmup",
    "add_warm_keys",
    "begin",
    "enabled",
    "numpy_kernels",
    "read_warm_keys",
    "shutdown",
    "signature_key",
    "warm_keys_path",
]

_active = None  # the Warmup routing CPU kernels, if any


def enabled() -> bool:
    """False when ``NUMBACNN_QUICK_START=0`` asks to wait for compiled kernels instead."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


# ---------------------------------------------------------------------------- signatures
def _arg_spec(value, by_value=True):
    """(what selects the compiled code, what the compiler process needs to rebuild the argument).

    ``by_value``: integers and flags are keyed by value. They are the hyper-parameters (kernel
    size, stride, padding, dilation, groups, flags) by which a kernel's Python wrapper chooses
    among its compiled functions, so two layers that differ only there are two signatures.
    """
    if isinstance(value, np.ndarray):
        flags = value.flags
        layout = "C" if flags.c_contiguous else "F" if flags.f_contiguous else "A"
        spec = ("array", value.shape, value.dtype.str, layout, bool(flags.writeable))
        # The key leaves out the first dimension (the batch, or the number of images or of
        # parameters): no kernel's path depends on it, and so a batch of another size (the last
        # one, or `numbacnn compile`'s tiny batches) is the same signature.
        return ("array", value.ndim, value.shape[1:]) + spec[2:], spec
    if isinstance(value, tuple):
        parts = [_arg_spec(v, by_value) for v in value]
        return ("tuple", tuple(p[0] for p in parts)), ("tuple", tuple(p[1] for p in parts))
    if by_value and isinstance(value, (bool, int, np.bool_, np.integer)):
        return ("int", type(value).__name__, int(value)), ("value", value)
    if isinstance(value, np.generic):
        return ("scalar", value.dtype.str), ("value", value)
    # Other scalars are keyed by type: a learning rate changes every step, and no kernel chooses
    # its code by a float.
    return ("scalar", type(value).__name__), ("value", value)


def signature_key(target, args, kwargs=None, names=()):
    """(key, specs): ``key`` identifies one compiled specialisation of ``target`` and the path its
    Python wrapper takes (which depends on the shapes past the batch dimension, on the integer
    hyper-parameters and on the optional arguments given); ``specs`` rebuild such arguments.
    ``names``: the kernel's parameter names, so that those in ``PER_CALL_SCALARS`` (a seed, a
    step count: new every call) are keyed by type, not value."""
    pairs = [_arg_spec(a, i >= len(names) or names[i] not in PER_CALL_SCALARS) for i, a in enumerate(args)]
    named = sorted((kwargs or {}).items())
    named_pairs = [(k, _arg_spec(v, k not in PER_CALL_SCALARS)) for k, v in named]
    key = (target, tuple(p[0] for p in pairs), tuple((k, p[0]) for k, p in named_pairs))
    specs = (tuple(p[1] for p in pairs), {k: p[1] for k, p in named_pairs})
    return key, specs


def warm_keys_path() -> str:
    """The file listing the signatures the JIT cache holds (next to the cache itself; its name
    carries the kernel sources' fingerprint and numba's version, so an edit starts a new one)."""
    import numba

    from .jit_cache import cache_dir, fingerprint

    return os.path.join(cache_dir(), f"quick-start-{fingerprint()}-numba{numba.__version__}.json")


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value


def read_warm_keys(path):
    """The set of keys in the warm-keys file (JSON: keys are tuples of strings, ints and bools)."""
    try:
        with open(path) as f:
            return {_as_tuples(key) for key in json.load(f)}
    except (OSError, ValueError, TypeError):
        return set()  # missing or unreadable: everything counts as cold


def add_warm_keys(path, keys):
    """Merge ``keys`` into the warm-keys file (atomically; another process may write it too)."""
    merged = read_warm_keys(path) | set(keys)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "w") as f:
            json.dump(sorted(merged, key=repr), f)
        os.replace(temporary, path)
    except OSError:  # an unwritable cache: the next process routes these to NumPy again
        pass


# ---------------------------------------------------------------------------- routing
class _Router:
    """What ``CPU.ops`` returns while a Warmup is active: kernels.cpu's names, routed."""

    def __init__(self, warmup):
        self._warmup = warmup

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        from ..kernels import cpu, npy

        compiled, twin = getattr(cpu, name), getattr(npy, name)
        target = f"numbacnn.kernels.cpu:{name}"
        names = tuple(inspect.signature(twin).parameters)

        def route(*args, **kwargs):
            return self._warmup.call(target, compiled, twin, args, kwargs, names)

        route.__name__ = name
        setattr(self, name, route)  # later look-ups skip __getattr__
        return route


class _Compiler:
    """The compiler process and what it was sent. One per training process, shared by successive
    Warmups (a second fit() does not compile the same kernels again). When this process exits,
    the compiler finishes what it was sent (its stdin closes), then exits too."""

    def __init__(self, command):
        self.command = command
        self.failed = []  # (target, message)
        self._sent = {}  # id -> key not yet answered
        self._ids = {}  # key -> id
        self._answers = collections.deque()  # filled by the reader thread
        self._process = None
        self._ended = False

    def submit(self, key, target, specs):
        """Send a signature to compile; False when no compiler process could be started."""
        if key in self._ids:
            return True
        if self._ended or (self._process is None and not self._start()):
            return False
        key_id = len(self._ids)
        self._ids[key] = key_id
        self._sent[key_id] = key
        try:
            pickle.dump((key_id, key, target, specs), self._process.stdin)
            self._process.stdin.flush()
        except (OSError, ValueError):  # the process is gone: poll() reads that it ended
            pass
        return True

    def _start(self):
        env = dict(os.environ)
        # One thread: the compiler must leave the cores to the training it warms up for.
        env.update(NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **{ENV: "0"})
        # This very numbacnn first on the path, whatever the working folder or installs elsewhere.
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join([here] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        try:
            self._process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
            )
        except OSError as error:
            self.failed.append(("compiler process", str(error)))
            self._ended = True
            return False
        threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True).start()
        return True

    def _read(self, stream):
        for line in stream:
            self._answers.append(line.decode(errors="replace").rstrip("\n"))
        self._answers.append(None)  # the process ended

    def poll(self):
        """(key, compiled) for the keys answered since the last poll: compiled, failed, or
        abandoned by a compiler that ended (those compile in the training process on first use,
        as without quick start)."""
        answered = []
        while self._answers:
            answer = self._answers.popleft()
            if answer is None:
                self._ended = True
                answered += [(key, False) for key in self._sent.values()]
                self._sent.clear()
                continue
            status, key_id, *message = answer.split(" ", 2)
            key = self._sent.pop(int(key_id), None)
            if key is not None:
                answered.append((key, status == "ok"))
                if status != "ok":
                    self.failed.append((key[0], message[0] if message else ""))
        return answered

    def stop(self):
        """Kill the process now (tests; an interrupted run lets it finish instead)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._ended = True


_compilers = {}  # command -> _Compiler


class _CompileCounter:
    """Counts the functions numba compiles in this process (not cache loads) while started."""

    def __init__(self):
        self.count = 0
        self._listener = None

    def start(self):
        from numba.core import event

        counter = self

        class Listener(event.Listener):
            def on_start(self, ev):
                counter.count += 1

            def on_end(self, ev):
                pass

        self._listener = Listener()
        event.register("numba:compile", self._listener)

    def stop(self):
        from numba.core import event

        if self._listener is not None:
            event.unregister("numba:compile", self._listener)
            self._listener = None


class Warmup:
    """Routes CPU kernels between their NumPy twins and their compiled forms (module docstring).

    ``command``: how to start the compiler process (tests substitute their own). The process is
    started at the first signature the cache lacks; none is started when everything is warm.
    ``numpy=False``: no twins and no process; cold signatures compile here and are recorded.
    """

    def __init__(self, command=None, numpy=True):
        self.numpy = numpy  # False: cold signatures compile here, and are only recorded
        self.compiled_here = set()  # cold signatures that ran compiled in this process
        self.path = warm_keys_path()
        self.ready = read_warm_keys(self.path)
        command = tuple(command or (sys.executable, "-m", "numbacnn.tools.kernel_compiler", self.path))
        self.compiler = _compilers.get(command)
        if self.compiler is None:
            self.compiler = _compilers[command] = _Compiler(list(command))
        self.numpy_calls = 0  # calls that ran on a NumPy twin
        self.signatures = set()  # the cold signatures this Warmup met
        self.compiled_in_background = set()  # those the compiler process has answered
        self._previous_ops = None
        self._compiles = _CompileCounter()  # what this process compiled while routing

    # -- routing
    def activate(self):
        global _active
        self._previous_ops, _active = CPU.ops_override, self
        CPU.ops_override = _Router(self)
        self._compiles.start()
        return self

    @property
    def active(self):
        return _active is self

    def call(self, target, compiled, twin, args, kwargs=None, names=()):
        kwargs = kwargs or {}
        key, specs = signature_key(target, args, kwargs, names)
        if key in self.ready:
            return compiled(*args, **kwargs)
        self.signatures.add(key)
        if not self.numpy:
            result = compiled(*args, **kwargs)  # compiles (and caches) what it lacks
            self.ready.add(key)
            self.compiled_here.add(key)
            return result
        if not self.compiler.submit(key, target, specs):
            self.ready.add(key)  # no compiler process: compile here, on this call
            return compiled(*args, **kwargs)
        self.numpy_calls += 1
        return twin(*args, **kwargs)

    def poll(self):
        """Take in what the compiler has finished. Returns how many of this Warmup's signatures
        are still pending."""
        for key, compiled in self.compiler.poll():
            self.ready.add(key)
            if compiled and key in self.signatures:
                self.compiled_in_background.add(key)
        return len(self.signatures - self.ready)  # every cold signature not answered was sent

    def settle(self):
        """Stop routing once nothing is pending: calls go straight to kernels.cpu again. Returns
        True when settled."""
        if self.active and self.poll() == 0:
            self.close()
        return not self.active

    def close(self):
        """Stop routing; the compiler goes on with what it was sent, for the next run."""
        global _active
        if self.active:
            CPU.ops_override, _active = self._previous_ops, None
            self._compiles.stop()
            from ..kernels.workspace import release

            release("npy.")  # the twins' scratch memory: no NumPy kernel runs after this
        if self.compiled_here:
            add_warm_keys(self.path, self.compiled_here)
            self.compiled_here = set()

    def report(self):
        """A summary for logs and ``--json``."""
        pending = self.poll()
        return {
            "numpy_calls": self.numpy_calls,
            "signatures": len(self.signatures),
            "compiled_in_background": len(self.compiled_in_background),
            "pending": pending,
            "compiled_in_process": self._compiles.count,
            "failed": [f"{target}: {message}" for target, message in self.compiler.failed],
        }


def shutdown():
    """Stop every compiler process now (tests; a process that just exits lets them finish)."""
    for compiler in _compilers.values():
        compiler.stop()
    _compilers.clear()


def begin(command=None, numpy=True):
    """An active Warmup, unless another is active (None then). ``numpy=False``, or quick start
    switched off (``NUMBACNN_QUICK_START=0``), gives one that runs every kernel compiled and only
    records which signatures it compiled, so that a later quick start knows them warm."""
    if _active is not None or CPU.ops_override is not None:
        return None
    return Warmup(command, numpy=numpy and enabled()).activate()


class numpy_kernels:
    """``with numpy_kernels():`` every CPU kernel runs its NumPy twin (tests compare the two)."""

    def __enter__(self):
        from ..kernels import npy

        self._previous = CPU.ops_override
        CPU.ops_override = npy
        return npy

    def __exit__(self, *exc):
        CPU.ops_override = self._previous
