"""The targets of issue 24 that compare.py does not measure, each in fresh processes, alternated.

    python benchmarks/targets.py [--alternations 2] [--seconds 1]

* threads: numbacnn training with numba at one thread (NUMBA_NUM_THREADS=1) against the default;
* import order: numbacnn training in a process that imported torch first, against one that did not;
* two at once: the README's library loop (LeNet-5, batch 64, SGD), one process alone against two
  started together; each reports its images/s over the same number of steps.

Every figure is the median over the alternations of a compare.py worker (median of its rounds)
or of a loop process; the machine is noisy (+-30%), so compare figures within one run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [HERE, REPO]
import compare  # noqa: E402
import engines  # noqa: E402

# The README's "From Python" loop, timed: a user's training through the library, not the CLI.
README_LOOP = """
import sys, time
sys.path.insert(0, {repo!r})
import numbacnn as nc
import numpy as np
nc.manual_seed(0)
model = nc.models.lenet5(in_channels=1, num_classes=10)
opt = nc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
crit = nc.losses.CrossEntropyLoss()
x = np.random.rand(64, 1, 28, 28).astype(np.float32)
y = np.random.randint(0, 10, 64)

def step():
    opt.zero_grad()
    crit.forward(model(x), y)
    model.backward(crit.backward())
    opt.step()

for _ in range(20):
    step()
print("ready", flush=True)
sys.stdin.readline()  # start together
t = time.perf_counter()
for _ in range({steps}):
    step()
print(64 * {steps} / (time.perf_counter() - t), flush=True)
"""


def _images_per_s(result, name):
    return engines.items_per_call(name) / result["seconds_per_call"] if "seconds_per_call" in result else None


def _worker(name, seconds, extra_env, torch_first=False):
    """One compare.py worker for numbacnn on ``name``; torch_first imports torch before it."""
    if not torch_first:
        env = dict(compare.ALLOCATOR, **extra_env)
        return _images_per_s(compare.measure("numbacnn", name, "cpu", seconds, 3, env), name)
    code = (
        "import sys, runpy; import torch; "
        f"sys.argv = ['compare.py', '--worker', 'numbacnn', {name!r}, '--seconds', {str(seconds)!r}]; "
        f"runpy.run_path({os.path.join(HERE, 'compare.py')!r}, run_name='__main__')"
    )
    env = dict(os.environ, **compare.ALLOCATOR, **extra_env)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return None
    return _images_per_s(json.loads(done.stdout.strip().splitlines()[-1]), name)


def _loops(count, steps):
    """Start ``count`` README loops, let each warm up, start them together; their images/s."""
    code = README_LOOP.format(repo=REPO, steps=steps)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(count)]  # fmt: skip
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    return [float(p.communicate()[0].strip()) for p in procs]


def _median(values):
    values = [v for v in values if v]
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alternations", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=400, help="steps of each README loop")
    args = parser.parse_args()
    print(f"# issue 24's other targets ({time.strftime('%Y-%m-%d %H:%M')}, `python benchmarks/targets.py "
          f"--alternations {args.alternations}`)\n")  # fmt: skip
    print("| workload | 2 threads | 1 thread | ratio | torch imported first | ratio |\n|---|---|---|---|---|---|")
    for name in ("lenet5_train_64", "lenet5_train_256", "resnet20_train_128"):
        two, one, torch_first = [], [], []
        for _ in range(args.alternations):
            two.append(_worker(name, args.seconds, {}))
            one.append(_worker(name, args.seconds, {"NUMBA_NUM_THREADS": "1"}))
            torch_first.append(_worker(name, args.seconds, {}, torch_first=True))
        a, b, c = _median(two), _median(one), _median(torch_first)
        row = f"| {engines.label(name)} | {a:,.0f} img/s | {b:,.0f} | {a / b:.2f}x | {c:,.0f} | {c / a:.2f}x |"
        print(row, flush=True)
    solo, pairs = [], []
    for _ in range(args.alternations):
        solo += _loops(1, args.steps)
        pairs += _loops(2, args.steps)
    print(
        f"\nREADME loop (LeNet-5, batch 64): alone {_median(solo):,.0f} img/s; two at once "
        f"{', '.join(f'{v:,.0f}' for v in pairs)} img/s each ({_median(pairs) / _median(solo):.2f} of alone)"
    )


if __name__ == "__main__":
    main()
