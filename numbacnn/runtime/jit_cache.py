"""Where numba keeps numbacnn's compiled kernels, and why a stale one is never used.

numba's own cache keys each function by its source file's timestamp and size. A kernel that
inlines a helper from another file (``kernels/shared_math.py``) is not recompiled when only that
helper changes, and an upgrade that leaves a file's size and time alike would not be noticed
either. numbacnn's kernels therefore go through :class:`NumbacnnCacheLocator`, whose source stamp
is a hash of every file jitted code can reach (``kernels/``), of the
numbacnn version and of a forced SIMD width (``NUMBACNN_LANES``: numba keys its entries by the
target CPU, which a forced width leaves alone): any edit, upgrade or other width invalidates them
all, and unrelated code keeps numba's usual cache.

The cache lives in ``$NUMBA_CACHE_DIR/numbacnn`` when that is set, else in the user cache
(``~/.cache/numbacnn/jit``), not next to the installed sources (which may be read-only).
``numbacnn info`` shows where and how warm it is; ``numbacnn compile`` fills it ahead of time.
"""

from __future__ import annotations

import hashlib
import os

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # numbacnn/
# What jitted code can reach: a change to any of these may change machine code. The NumPy twins
# (kernels/npy) are plain Python that no jitted code calls: editing them must not recompile.
JIT_SOURCES = ("kernels",)
NOT_JITTED = (os.path.join("kernels", "npy"),)

__all__ = ["NumbacnnCacheLocator", "cache_dir", "fingerprint", "install", "status"]

_fingerprints = {}


def fingerprint(root: str = PACKAGE, sources=JIT_SOURCES) -> str:
    """A hash of the files under ``root`` that jitted code can reach, of the version and of a
    forced SIMD width."""
    lanes = _forced_lanes()
    key = (root, tuple(sources), lanes)
    if key not in _fingerprints:
        from ..version import __version__

        digest = hashlib.sha256(f"{__version__} lanes={lanes}".encode())
        for source in sources:
            path = os.path.join(root, source)
            files = [path] if os.path.isfile(path) else sorted(
                os.path.join(d, f) for d, _, names in os.walk(path) for f in names if f.endswith(".py")
                and not os.path.relpath(d, root).startswith(NOT_JITTED)
            )  # fmt: skip
            for file in files:
                digest.update(os.path.relpath(file, root).encode())
                with open(file, "rb") as f:
                    digest.update(f.read())
        _fingerprints[key] = digest.hexdigest()[:16]
    return _fingerprints[key]


def _forced_lanes():
    """The SIMD width NUMBACNN_LANES forces, as a string ("" when it is the target's own): forced
    and native kernels of one width share their entries."""
    if not os.environ.get("NUMBACNN_LANES", "").strip():
        return ""
    from ..kernels.cpu import simd

    return "" if simd.LANES == simd.target_lanes() else str(simd.LANES)


def cache_dir() -> str:
    """The folder numbacnn's compiled kernels are cached in."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.path.join(os.environ["NUMBA_CACHE_DIR"], "numbacnn")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "numbacnn", "jit")


def _locator_base():
    from numba.core.caching import _CacheLocator, _SourceFileBackedLocatorMixin

    return _SourceFileBackedLocatorMixin, _CacheLocator


class _Locator:
    """Methods of the locator; the class numba sees is built on numba's bases in install()."""

    roots = {PACKAGE: JIT_SOURCES}  # root folder -> the sources its fingerprint covers

    def __init__(self, py_func, py_file, root):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._root = root
        self._cache_path = os.path.join(
            cache_dir(), os.path.basename(root), os.path.relpath(os.path.dirname(py_file), root)
        )

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        return fingerprint(self._root, self.roots[self._root])

    @classmethod
    def from_function(cls, py_func, py_file):
        path = os.path.abspath(py_file)
        root = next((r for r in cls.roots if path.startswith(r + os.sep)), None)
        if root is None:
            return None
        self = cls(py_func, path, root)
        try:
            self.ensure_cache_path()
        except OSError:
            return None  # unwritable: numba's next locator takes it
        return self


NumbacnnCacheLocator = None


def install():
    """Put the locator first in numba's list (before any numbacnn kernel is decorated)."""
    global NumbacnnCacheLocator
    from numba.core import caching

    if NumbacnnCacheLocator is None:
        NumbacnnCacheLocator = type("NumbacnnCacheLocator", (_Locator, *_locator_base()), {})
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    classes = getattr(impl, "_locator_classes", None)
    if classes is not None and NumbacnnCacheLocator not in classes:
        classes.insert(0, NumbacnnCacheLocator)


def status() -> dict:
    """{path, functions, cached}: numbacnn's cached kernels and how many hold code for the
    current sources (imports every kernel module; loads no machine code)."""
    import importlib
    import pkgutil

    from .. import kernels

    modules = []
    for info in pkgutil.walk_packages(kernels.__path__, kernels.__name__ + "."):
        if ".cuda" not in info.name:  # CUDA kernels are not cached on disk
            modules.append(importlib.import_module(info.name))
    total = warm = 0
    for module in modules:
        for value in vars(module).values():
            cache = getattr(value, "_cache", None)
            cache_file = getattr(cache, "_cache_file", None)
            if cache_file is None or getattr(value, "py_func", None) is None:
                continue
            if value.py_func.__module__ != module.__name__:
                continue
            total += 1
            try:
                warm += bool(cache_file._load_index())
            except Exception:  # an unreadable index counts as cold
                pass
    return {"path": cache_dir(), "functions": total, "cached": warm}
