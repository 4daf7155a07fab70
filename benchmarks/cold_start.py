"""Cold and warm first-step times of ``numbacnn train`` (issue: cold start).

Each figure is a fresh process (``numbacnn train MODEL --dataset synthetic --epochs 1 --json``)
reporting ``first_step_s``, the seconds from process start to the end of its first training step:

* cold, quick start: an empty JIT cache (``NUMBA_CACHE_DIR`` a new folder), the default;
* cold, waiting: an empty cache with ``NUMBACNN_QUICK_START=0`` (everything compiles first);
* warm: the same command again on the cache the waiting run filled.

Modes and models alternate within each round. A quick-start run leaves its compiler process
finishing in the background; the next run starts only after it has exited, so that it does not
take a core from the measurement.

    python benchmarks/cold_start.py [--rounds 3] [--models lenet5,resnet20]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

EXTRA = {"resnet20": ["--synthetic-size", "256"]}


def compilers_running():
    count = 0
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                count += b"numbacnn.tools.kernel_compiler" in f.read()
        except OSError:
            pass
    return count


def first_step(model, cache, quick):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMBACNN_QUICK_START="1" if quick else "0")
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "numbacnn", "train", model, "--dataset", "synthetic", "--epochs", "1"]
        command += EXTRA.get(model, []) + ["--json", "--no-plots", "--out", out]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    while compilers_running():
        time.sleep(0.2)
    return json.loads(done.stdout.strip().splitlines()[-1])["first_step_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="lenet5,resnet20")
    args = parser.parse_args()
    results = {}
    for _ in range(args.rounds):
        for model in args.models.split(","):
            row = results.setdefault(model, {"cold, quick start": [], "cold, waiting": [], "warm": []})
            with tempfile.TemporaryDirectory() as cache:
                row["cold, quick start"].append(first_step(model, cache, quick=True))
            with tempfile.TemporaryDirectory() as cache:
                row["cold, waiting"].append(first_step(model, cache, quick=False))
                row["warm"].append(first_step(model, cache, quick=True))
            print(model, {k: v[-1] for k, v in row.items()}, flush=True)
    print("\n| model | " + " | ".join(next(iter(results.values()))) + " |")
    print("|---|" + "---|" * len(next(iter(results.values()))))
    for model, row in results.items():
        cells = [f"{min(v):.2f}–{max(v):.2f} s" for v in row.values()]
        print(f"| {model} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
