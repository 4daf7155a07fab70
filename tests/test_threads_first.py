"""A foreign OpenMP runtime loaded before numbacnn (``import torch`` first) once made numbacnn's
loops spin against OpenBLAS (20x slower), and numbacnn switched to numba's workqueue threads. No
training step calls OpenBLAS now, so numba keeps its OpenMP threads and nothing is said."""

import subprocess
import sys

import pytest

PROBE = """
import ctypes, ctypes.util, warnings, sys
name = ctypes.util.find_library("gomp")
if name is None:
    print("NO-GOMP"); sys.exit()
ctypes.CDLL(name)                       # what `import torch` does first
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numbacnn, numba, numpy as np
    import numbacnn.kernels.cpu as cpu
    cpu.fill(np.empty(8, np.float32), 0)
print(numba.threading_layer(), any("loaded before numbacnn" in str(w.message) for w in caught))
"""


def _probe(env_extra):
    import os

    env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_THREADING_LAYER")
    }
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if "NO-GOMP" in out.stdout:
        pytest.skip("no libgomp on this machine")
    return out.stdout.split()


def test_an_openmp_runtime_loaded_first_keeps_openmp_and_says_nothing():
    assert _probe({}) == ["omp", "False"]


def test_an_exported_wait_policy_keeps_openmp():
    assert _probe({"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}) == ["omp", "False"]
