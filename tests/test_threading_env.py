"""numbacnn's thread settings: passive OpenMP waiting and short OpenBLAS spinning by default (see
numbacnn/__init__.py and benchmarks/NOTES.md), never overriding what the user exported."""

import os
import subprocess
import sys

PROBE = "import numbacnn, os; print(os.environ['OMP_WAIT_POLICY'], os.environ['OPENBLAS_THREAD_TIMEOUT'])"


def probe(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=dict(base, **env), capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_defaults_are_set_before_numpy_loads():
    assert probe() == ["PASSIVE", "4"]


def test_user_settings_win():
    assert probe(OMP_WAIT_POLICY="ACTIVE", OPENBLAS_THREAD_TIMEOUT="12") == ["ACTIVE", "12"]
