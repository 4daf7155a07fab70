"""Every SIMD width on any CPU: the kernel, allocation and dispatch tests again with the width
forced to 4, 8 and 16 lanes (``NUMBACNN_LANES``; LLVM splits vectors wider than the registers).
The suite itself runs them at this process's width, so only the two other widths run here.

An AVX2 machine alone would never compile the 16-lane kernels that an AVX-512 machine runs (a
warm step once allocated scratch sized by the width there and nowhere else), and an AVX-512
machine would never compile the 4- and 8-lane ones. Each width runs in a process of its own
because the width is fixed when the kernels are compiled; its JIT cache entries are its own.
"""

import os
import subprocess
import sys

import pytest

from numbacnn.kernels.cpu.simd import LANES

TESTS = os.path.dirname(os.path.abspath(__file__))
# What the width changes: the SIMD layer, every kernel written on it (convolutions, GEMM and the
# layers on them), the dispatch between them, and the scratch they take from the workspace.
# The layer-level Conv2d tests (test_conv.py) are left to the suite's own width: every entry they
# reach is checked against the references at each width by its own test_conv_<entry>.py.
WIDTH_TESTS = (
    "test_simd.py",
    "test_microkernel.py",
    "test_conv_tiles.py",
    "test_gemm.py",
    "test_conv_dispatch.py",
    "test_conv_pointwise.py",
    "test_conv_direct_positions.py",
    "test_conv_direct_samples.py",
    "test_conv_direct_channels.py",
    "test_conv_winograd.py",
    "test_conv_winograd_channels.py",
    "test_conv_winograd4_channels.py",
    "test_linear.py",
    "test_allocation.py",
)


def _run(env, *args, timeout=900):
    return subprocess.run([sys.executable, *args], env=env, cwd=TESTS, capture_output=True, text=True, timeout=timeout)


# The suite runs the kernel tests at this process's own width; the other two run here.
OTHER_WIDTHS = [lanes for lanes in (4, 8, 16) if lanes != LANES]


def test_the_suite_and_this_file_cover_every_width():
    assert sorted([LANES, *OTHER_WIDTHS]) == [4, 8, 16]


def _width_env(lanes):
    return dict(os.environ, NUMBACNN_LANES=str(lanes))


@pytest.fixture(scope="module")
def width_runs():
    """The kernel tests at each other width, started at once: each process spends most of its time
    compiling, on one core, so the two run side by side in the time of one."""
    # "not slow": the slow tests there compile for older CPUs in processes of their own; "not
    # dtype_f64": the width changes no dtype-specific code (helpers.FLOAT_TOLERANCES).
    options = ("-q", "-x", "-m", "not slow", "-k", "not dtype_f64", "-p", "no:cacheprovider")
    runs = {
        lanes: subprocess.Popen(
            [sys.executable, "-m", "pytest", *options, *WIDTH_TESTS],
            env=_width_env(lanes),
            cwd=TESTS,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for lanes in OTHER_WIDTHS
    }
    yield runs
    for run in runs.values():
        if run.poll() is None:
            run.kill()
            run.communicate()


@pytest.mark.parametrize("lanes", OTHER_WIDTHS)
def test_kernels_pass_at_every_width(lanes, width_runs):
    probe = _run(_width_env(lanes), "-c", "from numbacnn.kernels.cpu.simd import LANES; print(LANES)")
    assert probe.returncode == 0 and probe.stdout.split() == [str(lanes)], probe.stdout + probe.stderr
    stdout, stderr = width_runs[lanes].communicate(timeout=1200)
    assert width_runs[lanes].returncode == 0, f"at {lanes} lanes:\n{stdout[-4000:]}\n{stderr[-2000:]}"


def test_an_unknown_width_is_refused_by_name():
    env = dict(os.environ, NUMBACNN_LANES="12")
    done = _run(env, "-c", "import numbacnn.kernels.cpu")
    assert done.returncode != 0
    assert "NUMBACNN_LANES='12'" in done.stderr and "4, 8 or 16" in done.stderr
