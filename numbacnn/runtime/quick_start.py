"""Quick start: neither a cold nor a warm JIT cache holds up the first training step.

Compiling numbacnn's kernels takes tens of seconds the first time (``benchmarks/NOTES.md``, entry
20); afterwards they load from the cache, but the first load in a process also starts numba's
compiler target, which alone takes longer than a LeNet-5 step on the NumPy twins (entry 46). While
a :class:`Routing` is active, every CPU kernel call goes through a router that looks at the call's
signature (``warm_keys.signature_key``):

* a signature the cache holds (the warm-keys file lists them) runs the compiled kernel, once
  numba's target has started; a background thread starts it, and until then the call runs the
  kernel's NumPy twin (``kernels/npy``: same contract, nothing to compile);
* any other runs its NumPy twin and is sent to the cache's compiler (``compiler.py``: one process
  per cache, whoever started it), which fills the cache; the next call after its answer runs the
  compiled kernel, loaded from the cache.

Once nothing is left to compile or start, the router steps aside (``settle``) and calls go
straight to ``kernels.cpu``. The NumPy twins round differently in the last bits, and how many
calls they take depends on timing: set ``NUMBACNN_QUICK_START=0`` (or
``Trainer(quick_start=False)``) for a run that is bit for bit every other such run; it compiles
or loads in the training process instead and records what it compiled in the warm-keys file, as
the compiler does. A resumed run never sends a signature the cache holds to the twins, so it
continues bit for bit.

The three parts: ``warm_keys.py`` (signatures and the file of compiled ones), ``compiler.py`` (the
compiler process of the cache) and this module (the routing), whose state one :class:`QuickStart`
owns: ``state``.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import threading

from . import warm_keys
from .compiler import KernelCompiler
from .device import CPU
from .warm_keys import WarmKeys, add_warm_keys, signature_key

ENV = "NUMBACNN_QUICK_START"
__all__ = ["ENV", "QuickStart", "Routing", "begin", "enabled", "numpy_kernels", "shutdown", "state"]


def enabled() -> bool:
    """False when ``NUMBACNN_QUICK_START=0`` asks to wait for compiled kernels instead."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class _Router:
    """What ``CPU.ops`` returns while a Routing is active: kernels.cpu's names, routed."""

    def __init__(self, routing):
        self._routing = routing

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        from ..kernels import cpu, npy

        compiled, twin = getattr(cpu, name), getattr(npy, name)
        target = f"numbacnn.kernels.cpu:{name}"
        names = tuple(inspect.signature(twin).parameters)

        def route(*args, **kwargs):
            return self._routing.call(target, compiled, twin, args, kwargs, names)

        route.__name__ = name
        setattr(self, name, route)  # later look-ups skip __getattr__
        return route


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


@contextlib.contextmanager
def _without_scipy_blas_probe():
    """numba's start imports scipy.linalg only to ask whether numba-compiled np.correlate and
    np.convolve may call a BLAS (``numba.np.arraymath._HAVE_BLAS``). numbacnn's kernels use
    neither, and that import is half the start (benchmarks/NOTES.md, entry 46): while numba starts,
    scipy.linalg reads as absent (those two then run as loops in numba code); it imports as usual
    afterwards."""
    if "scipy.linalg" in sys.modules:
        yield
        return
    sys.modules["scipy.linalg"] = None
    try:
        yield
    finally:
        if "scipy.linalg" in sys.modules and sys.modules["scipy.linalg"] is None:
            del sys.modules["scipy.linalg"]


def _start_numba():
    """Start numba's CPU target (its typing and lowering registries, LLVM): what the first cache
    load of a process pays. Under the compiler lock, as numba itself does it; compiles nothing."""
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    # The contexts first: each is made under a lock of its own, which takes the compiler lock
    # inside (holding the compiler lock here while waiting for that one would deadlock).
    typing, target = cpu_target.typing_context, cpu_target.target_context
    with global_compiler_lock, _without_scipy_blas_probe():
        typing.refresh()
        target.refresh()


class Routing:
    """Routes CPU kernels between their NumPy twins and their compiled forms (module docstring).

    ``numpy=False``: no twins; cold signatures compile here and are recorded. ``twins_while_starting``
    (a fresh run): cached signatures run on the twins until numba's target has started.
    """

    def __init__(self, owner, command=None, numpy=True, twins_while_starting=True):
        self.owner = owner
        self.numpy = numpy
        self.keys = WarmKeys(warm_keys.warm_keys_path())
        self.ready = set(self.keys.current())  # signatures that run compiled when met
        self.compiler = owner.compiler(self.keys.path, command)
        if numpy and twins_while_starting:
            self.starting = owner.numba_start()  # cached signatures run on the twins meanwhile
        else:
            self.starting = None
            owner.numba_start().join()  # started here: every call runs compiled
        self.compiled_here = set()  # cold signatures that ran compiled in this process
        self.numpy_calls = 0  # calls that ran on a NumPy twin
        self.starting_calls = 0  # of those, calls of cached signatures while numba started
        self.signatures = set()  # the cold signatures this Routing met
        self.compiled_in_background = set()  # those the compiler has answered
        self._previous_ops = None
        self._compiles = _CompileCounter()  # what this process compiled while routing

    def activate(self):
        self._previous_ops = CPU.ops_override
        self.owner.active = self
        CPU.ops_override = _Router(self)
        self._compiles.start()
        return self

    @property
    def active(self):
        return self.owner.active is self

    def call(self, target, compiled, twin, args, kwargs=None, names=()):
        kwargs = kwargs or {}
        key, specs = signature_key(target, args, kwargs, names)
        if key in self.ready:
            if self.starting is not None and self.starting.is_alive():
                self.numpy_calls += 1
                self.starting_calls += 1
                return twin(*args, **kwargs)
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
        """Take in what the compiler has finished. Returns how many of this Routing's signatures
        are still pending."""
        for key, compiled in self.compiler.poll(self.keys.current):
            self.ready.add(key)
            if compiled and key in self.signatures:
                self.compiled_in_background.add(key)
        return len(self.signatures - self.ready)  # every cold signature not answered was sent

    def settle(self):
        """Stop routing once nothing is pending and numba has started: calls go straight to
        kernels.cpu again. Returns True when settled."""
        started = self.starting is None or not self.starting.is_alive()
        if self.active and self.poll() == 0 and started:
            self.close()
        return not self.active

    def close(self):
        """Stop routing; the compiler goes on with what it was sent, for the next run."""
        if self.active:
            CPU.ops_override, self.owner.active = self._previous_ops, None
            self._compiles.stop()
            from ..kernels.workspace import release

            release("npy.")  # the twins' scratch memory: no NumPy kernel runs after this
        if self.compiled_here:
            add_warm_keys(self.keys.path, self.compiled_here)
            self.compiled_here = set()

    def report(self):
        """A summary for logs and ``--json``."""
        pending = self.poll()
        return {
            "numpy_calls": self.numpy_calls,
            "numpy_calls_while_numba_started": self.starting_calls,
            "signatures": len(self.signatures),
            "compiled_in_background": len(self.compiled_in_background),
            "pending": pending,
            "compiled_in_process": self._compiles.count,
            "failed": [f"{target}: {message}" for target, message in self.compiler.failed],
        }


class QuickStart:
    """Quick start's state in this process: the Routing of CPU kernels (one at a time), the
    compiler of each cache (shared by successive Routings, so a second fit() does not ask for the
    same kernels again) and the thread that starts numba's target (once per process)."""

    def __init__(self):
        self.active = None
        self._compilers = {}  # (warm-keys path, command) -> KernelCompiler
        self._numba_start = None

    def compiler(self, path, command=None):
        key = (path, tuple(command) if command else None)
        if key not in self._compilers:
            self._compilers[key] = KernelCompiler(path, command)
        return self._compilers[key]

    def numba_start(self):
        """The thread starting numba's target, started at the first call (by the CLI as soon as it
        knows it will train, so that numba starts while the data loads)."""
        if self._numba_start is None:
            self._numba_start = threading.Thread(target=_start_numba, name="numbacnn-numba-start", daemon=True)
            self._numba_start.start()
        return self._numba_start

    def begin(self, command=None, numpy=True, resumed=False):
        """An active Routing, unless another is active (None then). ``numpy=False``, or quick start
        switched off (``NUMBACNN_QUICK_START=0``), gives one that runs every kernel compiled and
        only records which signatures it compiled, so that a later quick start knows them warm.
        ``resumed``: cached signatures never run on the twins (a resumed run continues exactly)."""
        if self.active is not None or CPU.ops_override is not None:
            return None
        numpy = numpy and enabled()
        return Routing(self, command, numpy=numpy, twins_while_starting=not resumed).activate()

    def shutdown(self):
        """Stop the compilers this process started, now (tests; a process that just exits lets
        them finish the queue)."""
        for compiler in self._compilers.values():
            compiler.stop()
        self._compilers.clear()


state = QuickStart()


def begin(command=None, numpy=True, resumed=False):
    """``state.begin``: an active Routing, or None when one is active already."""
    return state.begin(command, numpy, resumed)


def shutdown():
    """``state.shutdown``: stop the compilers this process started."""
    state.shutdown()


class numpy_kernels:
    """``with numpy_kernels():`` every CPU kernel runs its NumPy twin (tests compare the two)."""

    def __enter__(self):
        from ..kernels import npy

        self._previous = CPU.ops_override
        CPU.ops_override = npy
        return npy

    def __exit__(self, *exc):
        CPU.ops_override = self._previous
