"""The JIT cache never serves stale machine code: an edit to any file jitted code reaches (even
one that keeps the file's size and time, in a helper another file inlines) recompiles; unchanged
code loads from the cache."""

import os
import subprocess
import sys
import textwrap

RUN = """
import os, sys
sys.path.insert(0, {tmp!r})
import numbacnn.runtime.jit_cache as jc
if {guarded}:
    jc._Locator.roots[os.path.join({tmp!r}, "pkg")] = ("",)
from pkg.kern import k
print(k(1), k.stats.cache_hits.total(), k.stats.cache_misses.total())
"""


def _make_package(tmp):
    pkg = os.path.join(tmp, "pkg")
    os.makedirs(pkg)
    open(os.path.join(pkg, "__init__.py"), "w").close()
    with open(os.path.join(pkg, "helper.py"), "w") as f:
        f.write("def f(x):\n    return x + 1\n")
    with open(os.path.join(pkg, "kern.py"), "w") as f:
        f.write(
            textwrap.dedent("""
            from numba import njit
            from .helper import f
            g = njit(inline="always")(f)

            @njit(cache=True)
            def k(x):
                return g(x)
        """)
        )
    return os.path.join(pkg, "helper.py")


def _run(tmp, guarded):
    env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, "cache"))
    done = subprocess.run([sys.executable, "-c", RUN.format(tmp=tmp, guarded=guarded)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [int(v) for v in done.stdout.split()]


def _edit_keeping_size_and_time(path):
    stat = os.stat(path)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("x + 1", "x + 2"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_an_edit_to_an_inlined_helper_recompiles(tmp_path):
    helper = _make_package(str(tmp_path))
    assert _run(str(tmp_path), True) == [2, 0, 1]  # compiled, cached
    assert _run(str(tmp_path), True) == [2, 1, 0]  # loaded from the cache
    _edit_keeping_size_and_time(helper)
    assert _run(str(tmp_path), True) == [3, 0, 1]  # recompiled: the new helper


def test_numbas_own_cache_would_have_served_stale_code(tmp_path):
    """The case the locator exists for (so the test above cannot pass vacuously)."""
    helper = _make_package(str(tmp_path))
    assert _run(str(tmp_path), False)[0] == 2
    _edit_keeping_size_and_time(helper)
    assert _run(str(tmp_path), False)[0] == 2  # stale


def test_numbacnn_kernels_use_the_locator(tmp_path):
    code = "import numbacnn.kernels.cpu.elementwise as e; print(e._relu_fwd._cache._cache_path)"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == os.path.join(str(tmp_path), "numbacnn", "numbacnn", "kernels", "cpu"), out.stderr


def test_a_forced_simd_width_has_cache_entries_of_its_own(monkeypatch):
    """numba keys its entries by the target CPU, which NUMBACNN_LANES leaves alone: a forced width
    other than the target's must change the source stamp, and the target's own must not."""
    from numbacnn.kernels.cpu import simd
    from numbacnn.runtime import jit_cache

    native = jit_cache.fingerprint()
    other = 4 if simd.target_lanes() != 4 else 8
    monkeypatch.setenv("NUMBACNN_LANES", str(other))
    monkeypatch.setattr(simd, "LANES", other)  # what a process started with the variable has
    assert jit_cache.fingerprint() != native
    monkeypatch.setenv("NUMBACNN_LANES", str(simd.target_lanes()))
    monkeypatch.setattr(simd, "LANES", simd.target_lanes())
    assert jit_cache.fingerprint() == native
