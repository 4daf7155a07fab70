"""Test setup. CUDA tests run on a real GPU when the driver reports one; otherwise in numba's
simulator, which must be switched on before numba is first imported, so this runs first."""

import ctypes
import os
import sys


def _real_gpu_present():
    """Ask the CUDA driver directly (ctypes): importing numba here would fix its mode too early."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    return driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _real_gpu_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
# numba warns when a grid has fewer blocks than it likes; the tests' shapes are small on
# purpose, and that warning would otherwise turn into an error below (see pytest_configure).
# numbacnn switches it off in numba's config too (kernels/cuda/launch.py); as an environment
# variable it also survives numba re-reading its config when a test changes a NUMBA_* variable.
os.environ.setdefault("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "0")
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    # The simulator runs a block's threads as Python threads watched by a polling loop; at every
    # syncthreads they hand the GIL around. The default 5 ms switch interval makes each barrier
    # cost milliseconds; 50 us makes the CUDA suite about ten times faster.
    sys.setswitchinterval(5e-5)

# Tests compare runs bit for bit, and a cold JIT cache (every fresh CI clone) would start each
# training on the NumPy kernels (runtime/quick_start.py). The quick_start_on fixture switches it back on
# (tests/test_quick_start.py, the CLI tests).
os.environ.setdefault("NUMBACNN_QUICK_START", "0")

# numbacnn before numpy: it sets the OpenMP and OpenBLAS thread settings that are read when those
# libraries load (numbacnn/__init__.py), as the numbacnn command does.
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import numbacnn as nc  # noqa: E402  (after the simulator switch above)


def _patch_simulator_shared_arrays():
    """Make the simulator's cuda.shared.array allocation atomic.

    numba-cuda's simulator (FakeCUDAShared.array) finds a block's shared array with an unlocked
    check-then-create keyed by the calling line, so two threads of one block can each create
    their own "shared" array and then read garbage. This is the same lookup under a lock.
    """
    import threading
    import traceback

    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    lock = threading.Lock()
    original = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = self._allocations[caller] = np.empty(shape, dtype)
        return res

    kernelapi.FakeCUDAShared.array = array


if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    _patch_simulator_shared_arrays()


def pytest_configure(config):
    # A performance warning is a bug here: numba's implicit host->GPU copy of a numpy array
    # handed to a CUDA kernel, or a parallel=True loop that did not parallelise.
    config.addinivalue_line("filterwarnings", "error::numba.core.errors.NumbaPerformanceWarning")


@pytest.fixture(scope="session")
def cli():
    """``cli("train", "lenet5", ...)``: the numbacnn command run in-process (click's CliRunner);
    arguments are turned into strings, exceptions propagate, ``env`` adds environment variables."""
    from click.testing import CliRunner

    from numbacnn.cli import main

    def run(*args, env=None):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)

    return run


@pytest.fixture
def quick_start_on(tmp_path, monkeypatch):
    """Quick start switched on, as a user has it, with a record of compiled signatures of its own
    that starts empty: every kernel signature starts on its NumPy twin and moves to its compiled
    form when the compiler process (which finds numba's cache warm) answers."""
    from numbacnn.runtime import quick_start, warm_keys

    monkeypatch.setenv(quick_start.ENV, "1")
    path = str(tmp_path / "quick-start-keys.json")
    monkeypatch.setattr(warm_keys, "warm_keys_path", lambda: path)
    yield path
    if quick_start.state.active is not None:  # a test that failed half-way: leave routing off
        quick_start.state.active.close()
    quick_start.shutdown()


@pytest.fixture(scope="session")
def cuda():
    """The CUDA device (a real GPU, or numba's simulator); tests that take it skip without either
    (tests/cuda_parity.py: needs_cuda)."""
    return nc.get_device("cuda")


@pytest.fixture
def decoded_cache_dir(tmp_path, monkeypatch):
    """Decoded images and parsed CSVs go to this test's folder, not the user's cache (numba's
    cache stays put)."""
    from numbacnn.data import decoded_cache

    root = tmp_path / "decoded-cache"
    monkeypatch.setattr(decoded_cache, "cache_root", lambda: root)
    return root


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seeded():
    nc.manual_seed(0)
