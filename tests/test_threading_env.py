"""numbacnn's thread settings: passive OpenMP waiting and short OpenBLAS spinning by default (see
numbacnn/__init__.py and benchmarks/NOTES.md), never overriding what the user exported."""

import json
import os
import subprocess
import sys

PROBE = "import numbacnn, os; print(os.environ['OMP_WAIT_POLICY'], os.environ['OPENBLAS_THREAD_TIMEOUT'])"
# What the environment holds at the moment numpy and numba are first imported (an import hook
# runs before either loads), which is when OpenBLAS and numba's OpenMP read it.
ORDER_PROBE = """
import json, os, sys
seen = {}
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in ("numpy", "numba") and name not in seen:
            seen[name] = [os.environ.get("OMP_WAIT_POLICY"), os.environ.get("OPENBLAS_THREAD_TIMEOUT")]
sys.meta_path.insert(0, Watch())
import numbacnn
print(json.dumps(seen))
"""


def probe(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=dict(base, **env), capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_defaults_are_set_before_numpy_loads():
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    done = subprocess.run([sys.executable, "-c", ORDER_PROBE], env=base, capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert seen == {"numpy": ["PASSIVE", "4"], "numba": ["PASSIVE", "4"]}
    assert probe() == ["PASSIVE", "4"]


def test_user_settings_win():
    assert probe(OMP_WAIT_POLICY="ACTIVE", OPENBLAS_THREAD_TIMEOUT="12") == ["ACTIVE", "12"]


def test_openmp_threads_spin_briefly_unless_told_otherwise():
    """GOMP_SPINCOUNT: a short spin by default (a longer one starves a second training on the same
    cores: benchmarks/NOTES.md, entry 56); an exported value stays."""
    code = "import numbacnn, os; print(os.environ['GOMP_SPINCOUNT'])"
    base = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    for env, want in ((base, "1000"), (dict(base, GOMP_SPINCOUNT="300"), "300")):
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert done.stdout.split() == [want]
