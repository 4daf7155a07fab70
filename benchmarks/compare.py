"""numbacnn against PyTorch (and a NumPy im2col reference), each engine in its own fresh process.

    python benchmarks/compare.py [--alternations 3] [--seconds 1] [--only NAME ...] [--out FILE]

Why separate processes: settings an engine makes for itself (numbacnn sets OMP_WAIT_POLICY=PASSIVE
and OPENBLAS_THREAD_TIMEOUT when it is imported; PyTorch loads its own OpenMP) must not touch the
other's figures. Every measurement is a fresh ``python compare.py --worker ENGINE WORKLOAD``
process that imports only its engine, warms up (the JIT compile time is reported apart), then
times rounds of about ``--seconds`` each and reports the median time per call.

The engines alternate (numbacnn, PyTorch, PyTorch, ... in a rotating order) ``--alternations``
times per workload, and the table gives the median over alternations. PyTorch runs three times:
with its defaults, with the allocator setting its tuning guide recommends
(``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` so glibc keeps freed memory), and with
that setting in channels-last memory (where oneDNN runs its fastest 3x3 convolutions); numbacnn
and the NumPy reference run with that same allocator setting. The ratio is against the fastest
PyTorch column. Machines here are noisy (+-30% between runs): compare ratios within one run.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# Time the numbacnn of this checkout, whatever an installed copy elsewhere says.
sys.path[:0] = [HERE, REPO]
import engines  # noqa: E402  (stdlib only at import time)

# glibc keeps freed memory instead of returning it at every free (PyTorch's CPU tuning guide).
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
# (column, engine, extra environment)
VARIANTS = [
    ("numbacnn", "numbacnn", ALLOCATOR),
    ("PyTorch default", "torch", {}),
    ("PyTorch + allocator", "torch", ALLOCATOR),
    ("PyTorch channels_last", "torch", dict(ALLOCATOR, **{engines.TORCH_MEMORY_FORMAT: "channels_last"})),
    ("NumPy ref", "numpy", ALLOCATOR),
]


# ------------------------------------------------------------------ the worker (one engine, one workload)
def worker(engine, name, device, seconds, rounds):
    """Time ``engine`` on workload ``name`` in this process; print one JSON line."""
    if engine == "peak":
        return _peak_worker(rounds)
    started = time.perf_counter()
    built = engines.build(engine, name, device)
    if built is None:
        print(json.dumps({"skipped": True}))
        return
    step, sync = built
    step()  # first call: JIT compile (numbacnn), allocator warm-up (PyTorch)
    sync()
    compile_s = time.perf_counter() - started
    calls, t = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - t < seconds / 4:  # calibrate the calls per round
        step()
        sync()
        calls += 1
    per_round = max(1, int(calls / max(time.perf_counter() - t, 1e-9) * seconds))
    per_call = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(per_round):
            step()
        sync()
        per_call.append((time.perf_counter() - t) / per_round)
    print(json.dumps({"seconds_per_call": statistics.median(per_call), "rounds": per_call,
                      "calls_per_round": per_round, "first_call_s": compile_s, "facts": _facts(engine)}))  # fmt: skip


def _peak_worker(rounds):
    import numbacnn  # noqa: F401  (its OpenBLAS settings, as in the numbacnn worker)
    from numbacnn.tools import bench

    print(json.dumps({"gflops": bench.sgemm_peak(repeats=rounds)["gflops"]}))


def _facts(engine):
    if engine == "torch":
        import torch

        return {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if engine == "numbacnn":
        import numba

        import numbacnn

        return {"numbacnn": numbacnn.__version__, "numba": numba.__version__, "threads": numba.config.NUMBA_NUM_THREADS}
    import numpy

    return {"numpy": numpy.__version__}


# ------------------------------------------------------------------ the orchestrator
def measure(engine, name, device, seconds, rounds, extra_env, timeout=900):
    """Run one worker process; its JSON result, or {"error": ...}."""
    env = dict(os.environ, **extra_env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--worker", engine, name, "--device", device,
           "--seconds", str(seconds), "--rounds", str(rounds)]  # fmt: skip
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_installed():
    done = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return done.returncode == 0


def run_table(names, device, alternations, seconds, rounds, variants):
    """{workload: {column: [seconds per call, one per alternation]}}, printing progress."""
    results = {}
    for name in names:
        present = [v for v in variants if not (v[1] == "numpy" and engines.WORKLOADS[name][0] != "conv")]
        results[name] = {column: [] for column, _, _ in present}
        for alt in range(alternations):
            order = present[alt % len(present) :] + present[: alt % len(present)]
            for column, engine, extra in order:
                r = measure(engine, name, device, seconds, rounds, extra)
                if "seconds_per_call" in r:
                    results[name][column].append(r["seconds_per_call"])
                    results[name].setdefault("_facts", {})[column] = r["facts"]
                else:
                    print(f"  {name} {column}: {r.get('error', 'skipped')}", file=sys.stderr, flush=True)
        print(f"  {name}: " + ", ".join(f"{c} {_rate(name, v):.1f}" for c, v in results[name].items() if c[0] != "_"
                                        and v), file=sys.stderr, flush=True)  # fmt: skip
    return results


def _rate(name, times):
    """Throughput from the median time per call: images/s, or GFLOP/s for conv rows."""
    per_call = statistics.median(times)
    items = engines.items_per_call(name)
    return items / per_call if items else engines.conv_flops(name) / per_call / 1e9


def format_table(results, columns, peak=None):
    lines = ["| workload | " + " | ".join(columns) + " | numbacnn / best PyTorch |",
             "|---|" + "---|" * (len(columns) + 1)]  # fmt: skip
    for name, by_column in results.items():
        unit = "img/s" if engines.items_per_call(name) else "GFLOP/s"
        cells, rates = [], {}
        for column in columns:
            times = by_column.get(column) or []
            if times:
                rates[column] = _rate(name, times)
                cells.append(f"{rates[column]:,.0f} {unit}" if unit == "img/s" else f"{rates[column]:.1f} {unit}")
            else:
                cells.append("-")
        torch_rates = [v for c, v in rates.items() if c.startswith("PyTorch")]
        ratio = f"{rates['numbacnn'] / max(torch_rates):.2f}x" if torch_rates and "numbacnn" in rates else "-"
        row_label = engines.label(name)
        if unit == "GFLOP/s" and peak and "numbacnn" in rates:
            row_label += f" (numbacnn {100 * rates['numbacnn'] / peak:.0f}% of sgemm peak {peak:.0f})"
        lines.append(f"| {row_label} | " + " | ".join(cells) + f" | {ratio} |")
    return lines


def main(argv=None, default_out=os.path.join(HERE, "RESULTS.md"), device="cpu"):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alternations", type=int, default=3, help="times each engine runs per workload")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per process (median)")
    parser.add_argument("--only", nargs="*", choices=sorted(engines.WORKLOADS), help="workloads to run")
    parser.add_argument("--device", default=device, choices=["cpu", "cuda"])
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--worker", nargs=2, metavar=("ENGINE", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker[0], args.worker[1], args.device, args.seconds, args.rounds)
    variants = [v for v in VARIANTS if args.device == "cpu" or v[1] != "numpy"]
    if not torch_installed():
        print("PyTorch is not installed (pip install torch==2.13.0): numbacnn only", file=sys.stderr)
        variants = [v for v in variants if v[1] != "torch"]
    names = args.only or list(engines.WORKLOADS)
    started = time.strftime("%Y-%m-%d %H:%M")
    peak = measure("peak", "-", args.device, args.seconds, 5, ALLOCATOR).get("gflops") if args.device == "cpu" else None
    results = run_table(names, args.device, args.alternations, args.seconds, args.rounds, variants)
    facts = {}
    for by_column in results.values():
        facts.update(by_column.pop("_facts", {}))
    columns = [c for c, _, _ in variants]
    lines = [
        f"# numbacnn vs PyTorch, separate processes ({started})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; device {args.device}. Each figure is "
        f"the median over {args.alternations} alternating fresh processes per engine, each the median "
        f"of {args.rounds} rounds of ~{args.seconds:g} s after a warm-up. Engines: "
        + "; ".join(f"{c}: {json.dumps(f)}" for c, f in facts.items())
        + ". Allocator setting: " + " ".join(f"{k}={v}" for k, v in ALLOCATOR.items())
        + ". Command: `python benchmarks/compare.py"
        + (f" --device {args.device}" if args.device != "cpu" else "")
        + f" --alternations {args.alternations}`.",
        "",
        *format_table(results, columns, peak),
    ]  # fmt: skip
    print("\n".join(lines))
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
