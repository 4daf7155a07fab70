"""Quick start's keys: what identifies one compiled kernel specialisation, and the file that lists
those the JIT cache holds (next to the cache; runtime/quick_start.py routes by it).

A key is (kernel; the arguments' dtypes, layouts and shapes past the batch dimension, and the
batch up to FULL_BATCH; the values of integer hyper-parameters, which choose the compiled code;
other scalars' types). The warm-keys
file is JSON, written atomically, merged by every process that adds to it.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..kernels import PER_CALL_SCALARS

# The convolution table sends batches under 2 LANES (at most 32) to other kernels than larger ones
# (kernels/cpu/conv/dispatch.py, rule few_samples): batches from FULL_BATCH on take one path.
FULL_BATCH = 32

__all__ = ["FULL_BATCH", "WarmKeys", "add_warm_keys", "read_warm_keys", "signature_key", "warm_keys_path"]


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
        # The key holds the first dimension (the batch, or the number of images or of parameters)
        # only up to FULL_BATCH: past it no kernel's path depends on it, so every full batch and
        # evaluation's larger ones are one signature; under it, the convolutions take another path.
        batch = min(value.shape[0], FULL_BATCH) if value.ndim else 0
        return ("array", value.ndim, batch, value.shape[1:]) + spec[2:], spec
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
    Python wrapper takes (which depends on the shapes past the batch dimension, on the batch under
    FULL_BATCH, on the integer hyper-parameters and on the optional arguments given); ``specs``
    rebuild such arguments.
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


class WarmKeys:
    """The warm-keys file at ``path``, read again only when it has changed (polled every step)."""

    def __init__(self, path):
        self.path, self._stamp, self._keys = path, None, set()

    def current(self):
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._stamp, self._keys = stamp, read_warm_keys(self.path)
        return self._keys
