"""The compiler process of quick start (``numbacnn/runtime/compiler.py``), one per JIT cache.

``python -m numbacnn.tools.kernel_compiler WARM_KEYS_FILE``. It holds the cache's lock while it
lives: either inherited from the process that started it (the descriptor in
``NUMBACNN_COMPILER_LOCK_FD``, locked before the start) or taken here; if another compiler holds
it, this one exits at once. It takes the request files of the queue in turn: for each it builds
zero-filled arguments of the recorded shapes, dtypes and layouts, calls the kernel (compiling it,
which writes the cache), adds the key to the warm-keys file and deletes the request; a kernel
that fails leaves a ``.fail`` note instead. Zeros are valid input for every kernel: they make
in-range indices and finite math. Once the queue has stayed empty for IDLE_SECONDS, it exits.
"""

import os
import pickle
import sys
import time

IDLE_SECONDS = 5.0
POLL_SECONDS = 0.1


def _build(spec):
    import numpy as np

    kind = spec[0] if isinstance(spec, tuple) and spec else None
    if kind == "array":
        _, shape, dtype, layout, writeable = spec
        if layout == "F":
            array = np.zeros(shape[::-1], dtype).T
        elif layout == "A":
            array = np.zeros(tuple(shape) + (2,), dtype)[..., 0]
        else:
            array = np.zeros(shape, dtype)
        array.flags.writeable = writeable
        return array
    if kind == "tuple":
        return tuple(_build(s) for s in spec[1])
    if kind == "value":
        return spec[1]
    return spec  # None


def _resolve(target):
    import importlib

    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _hold_lock(lock_path):
    """True when this process holds the cache's compiler lock (inherited or taken now)."""
    import fcntl

    inherited = os.environ.pop("NUMBACNN_COMPILER_LOCK_FD", None)
    if inherited is not None:
        return True  # locked by the process that started this one; our copy keeps it held
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True  # fd stays open (and locked) until the process exits


def _compile(path, request, add_warm_keys):
    """Compile one request file; its key goes into the warm-keys file, or a .fail note is left."""
    try:
        with open(request, "rb") as f:
            key, target, (args, kwargs) = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError):
        _remove(request)  # unreadable: the process that wrote it asks again
        return
    try:
        _resolve(target)(*(_build(a) for a in args), **{k: _build(v) for k, v in kwargs.items()})
        add_warm_keys(path, [key])
    except Exception as error:  # the training process compiles it itself on first use
        note = f"{type(error).__name__}: {error}".replace("\n", " ")[:300]
        with open(request[: -len(".req")] + ".fail", "w") as f:
            f.write(note)
    _remove(request)


def _requests(queue):
    """The queue's request files, oldest first (the order the training met them)."""
    found = []
    try:
        for entry in os.scandir(queue):
            if entry.name.endswith(".req"):
                try:
                    found.append((entry.stat().st_mtime_ns, entry.path))
                except OSError:  # taken meanwhile
                    pass
    except OSError:
        pass
    return [path for _, path in sorted(found)]


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def main(path):
    import numbacnn  # noqa: F401  (thread settings, the JIT cache locator)

    from ..runtime.compiler import queue_paths
    from ..runtime.warm_keys import add_warm_keys

    lock_path, queue = queue_paths(path)
    if not _hold_lock(lock_path):
        return  # another compiler serves this cache
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < IDLE_SECONDS:
        requests = _requests(queue)
        if not requests:
            time.sleep(POLL_SECONDS)
            continue
        for request in requests:
            _compile(path, request, add_warm_keys)
        idle_since = time.monotonic()


if __name__ == "__main__":
    main(sys.argv[1])
