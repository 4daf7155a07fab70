"""The SIMD layer (kernels/cpu/simd.py): every operation against NumPy in float32 and float64, and
the vector width following the target numba compiles for. (The register tiles written on it:
test_microkernel.py.)"""

import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from numbacnn.kernels.cpu.simd import LANES, lanes_for, vadd, vfma, vload, vmax, vmul, vsplat, vstore, vsum


@njit(fastmath=True, boundscheck=False)
def _every_operation(out, a, b, s, offset):
    x, y = vload(a, offset), vload(b, 0)
    vstore(out, 0, vfma(x, y, vsplat(s)))
    vstore(out, LANES, vadd(x, y))
    vstore(out, 2 * LANES, vmul(x, y))
    vstore(out, 3 * LANES, vmax(x, y))
    vstore(out, 4 * LANES, vsplat(s))
    return vsum(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_operation_matches_numpy(dtype, rng):
    a = rng.standard_normal((3, LANES)).astype(dtype)  # a 2-D array, read at a flat offset
    b = rng.standard_normal(LANES).astype(dtype)
    out = np.zeros(5 * LANES, dtype)
    total = _every_operation(out, a, b, dtype(0.25), LANES)
    x = a[1]
    tol = dict(rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(out[:LANES], x * b + dtype(0.25), **tol)
    np.testing.assert_array_equal(out[LANES : 2 * LANES], x + b)
    np.testing.assert_array_equal(out[2 * LANES : 3 * LANES], x * b)
    np.testing.assert_array_equal(out[3 * LANES : 4 * LANES], np.maximum(x, b))
    np.testing.assert_array_equal(out[4 * LANES :], np.full(LANES, 0.25, dtype))
    np.testing.assert_allclose(total, x.astype(np.float64).sum(), **tol)


def test_the_fma_rounds_once(rng):
    """vfma is fused: (1 + e)(1 - e) - 1 keeps the -e^2 that a multiply then an add loses."""
    e = np.float32(2.0**-13)
    out = np.zeros(5 * LANES, np.float32)
    a = np.full(LANES, 1 + e, np.float32)
    b = np.full(LANES, 1 - e, np.float32)
    _every_operation(out, a, b, np.float32(-1.0), 0)
    np.testing.assert_array_equal(out[:LANES], np.full(LANES, -(e * e), np.float32))


@pytest.mark.parametrize(
    "name, features, lanes",
    [
        ("znver4", "+avx512f,+avx2,+avx", 16),
        ("znver4", "-avx512f,+avx2,+avx", 8),
        ("haswell", "", 8),
        ("haswell", None, 8),
        ("skylake-avx512", "", 16),
        ("x86-64", "", 4),
        ("generic", None, 4),
    ],
)
def test_the_width_follows_the_compile_target(name, features, lanes):
    assert lanes_for(name, features) == lanes


PROBE = """
import numpy as np
from numbacnn.kernels.cpu import microkernel
from numbacnn.kernels.cpu.simd import LANES
rng = np.random.default_rng(0)
a = rng.standard_normal((20, microkernel.ROWS)).astype(np.float32)
b = rng.standard_normal((20, microkernel.COLUMNS)).astype(np.float32)
c = np.zeros((microkernel.ROWS, microkernel.COLUMNS), np.float32)
microkernel.gemm_6x2v_once(c, a, b, 20)
print(LANES, float(np.abs(c - a.T.astype(np.float64) @ b.astype(np.float64)).max()))
"""


@pytest.mark.slow
@pytest.mark.parametrize("cpu, lanes", [("haswell", 8), ("x86-64", 4)])
def test_compiled_for_an_older_cpu_with_an_empty_cache(cpu, lanes, tmp_path):
    """Both variables set (the name alone keeps the host's features): the vectors narrow to the
    target's registers, and the results stay right."""
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES="", NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got_lanes, error = done.stdout.split()
    assert int(got_lanes) == lanes and float(error) < 1e-4
