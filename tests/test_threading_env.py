"""numbacnn's thread settings: passive OpenMP waiting and short OpenBLAS spinning by default (see
numbacnn/__init__.py and benchmarks/NOTES.md), never overriding what the user exported."""

import json
import os
import subprocess
import sys

# The settings numbacnn defaults (runtime/threads.py), each left out of the environment a probe starts from.
SETTINGS = ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "GOMP_SPINCOUNT")
PROBE = "import numbacnn, os; print(*(os.environ[k] for k in %r))" % (SETTINGS,)
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
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=dict(base, **env), capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_defaults_are_set_before_numpy_loads():
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    done = subprocess.run([sys.executable, "-c", ORDER_PROBE], env=base, capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert seen == {"numpy": ["PASSIVE", "4"], "numba": ["PASSIVE", "4"]}
    assert probe() == ["PASSIVE", "4", "1000"]


def test_user_settings_win():
    """Whatever the user exported stays. GOMP_SPINCOUNT's default is a short spin: a longer one
    starves a second training on the same cores (benchmarks/NOTES.md, entry 56)."""
    assert probe(OMP_WAIT_POLICY="ACTIVE", OPENBLAS_THREAD_TIMEOUT="12", GOMP_SPINCOUNT="300") == [
        "ACTIVE",
        "12",
        "300",
    ]
