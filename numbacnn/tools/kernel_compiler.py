"""The compiler process of quick start (``numbacnn/runtime/quick_start.py``).

Reads pickled ``(key_id, key, target, specs)`` messages from stdin, one per kernel signature the
training process met and the JIT cache lacked. For each it builds zero-filled arguments of the
recorded shapes, dtypes and layouts, calls ``target`` (compiling it, which writes the cache), adds
the key to the warm-keys file given as argv[1], and answers ``ok <id>`` (or ``fail <id> <why>``)
on stdout. Zeros are valid input for every kernel: they make in-range indices and finite math.
"""

import pickle
import sys


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


def _answer(stdout, line):
    """Tell the training process; once it has exited, keep compiling for the next run."""
    if stdout is None:
        return None
    try:
        stdout.write(line)
        stdout.flush()
        return stdout
    except OSError:  # the training process is gone (a broken pipe)
        return None


def main(path):
    import numbacnn  # noqa: F401  (thread settings, the JIT cache locator)

    from ..runtime.quick_start import add_warm_keys

    stdin, stdout = sys.stdin.buffer, sys.stdout
    while True:
        try:
            key_id, key, target, (args, kwargs) = pickle.load(stdin)
        except EOFError:
            return
        try:
            _resolve(target)(*(_build(a) for a in args), **{k: _build(v) for k, v in kwargs.items()})
            add_warm_keys(path, [key])
            answer = f"ok {key_id}\n"
        except Exception as error:  # the training process compiles it itself on first use
            answer = f"fail {key_id} " + f"{type(error).__name__}: {error}".replace("\n", " ")[:300] + "\n"
        stdout = _answer(stdout, answer)


if __name__ == "__main__":
    main(sys.argv[1])
