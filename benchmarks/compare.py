"""numbacnn against references, interleaved in one process: a NumPy im2col engine, and PyTorch
when it is installed (``pip install torch==2.13.0``; optional). Writes a markdown table.

    python benchmarks/compare.py [--rounds 5] [--out benchmarks/RESULTS.md]

Machines here are noisy (+-30% between runs), so every comparison is a ratio measured in the same
run: each round times every engine once, in turn, and the table reports medians over rounds.
"""

import argparse
import os
import platform
import time

import numpy as np

# numbacnn first: it sets the thread settings OpenBLAS and OpenMP read when they load (see
# numbacnn/__init__.py), as the numbacnn command does.
import numbacnn as nc  # noqa: I001
from numbacnn import bench

try:
    import torch
except ImportError:  # PyTorch is an optional reference
    torch = None


# ------------------------------------------------------------------ workloads, one closure per engine
# Each takes the device to run on ("cpu", or "cuda" for benchmarks/gpu_compare.py); the data
# starts on that device.
def numbacnn_train(name, batch, shape, device="cpu"):
    device = nc.get_device(device)
    model = nc.models.create(name, shape[0], 10, shape[1]).to(device)
    model.first_layer().input_grad = False
    opt = nc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    crit = nc.losses.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = device.asarray(rng.standard_normal((batch,) + shape).astype(np.float32))
    y = rng.integers(0, 10, batch)

    def step():
        opt.zero_grad()
        # The per-sample losses stay where they are: a GPU step need not wait for a host copy.
        crit.forward(model.forward(x), y, return_device_loss=True)
        model.backward(crit.backward())
        opt.step()

    return step


def numbacnn_infer(name, batch, shape, device="cpu"):
    device = nc.get_device(device)
    model = nc.models.create(name, shape[0], 10, shape[1]).to(device).eval()
    x = device.asarray(np.random.default_rng(0).standard_normal((batch,) + shape).astype(np.float32))
    return lambda: model.forward(x)


def torch_model(name, shape):
    nn = torch.nn
    if name == "lenet5":
        return nn.Sequential(
            nn.Conv2d(shape[0], 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.short = (
                nn.Identity()
                if stride == 1 and cin == cout
                else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            )

        def forward(self, x):
            h = torch.relu(self.b1(self.c1(x)))
            return torch.relu(self.b2(self.c2(h)) + self.short(x))

    depth = int(name[len("resnet") :])
    n, layers, c = (depth - 2) // 6, [], 16
    for mult, stride in ((1, 1), (2, 2), (4, 2)):
        for i in range(n):
            layers.append(Block(c, 16 * mult, stride if i == 0 else 1))
            c = 16 * mult
    return nn.Sequential(
        nn.Conv2d(shape[0], 16, 3, 1, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        *layers,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c, 10),
    )


def torch_train(name, batch, shape, device="cpu"):
    model = torch_model(name, shape).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    crit = torch.nn.CrossEntropyLoss()
    x = torch.randn((batch,) + shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()

    return step


def torch_infer(name, batch, shape, device="cpu"):
    model = torch_model(name, shape).to(device).eval()
    x = torch.randn((batch,) + shape, device=device)

    def run():
        with torch.no_grad():
            model(x)

    return run


def numpy_conv(n, c, hw, k):
    """The NumPy reference: im2col by stride tricks + one matmul per direction, float32."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((n, k, hw, hw)).astype(np.float32)

    def step():
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # n c h w 3 3
        cols = win.transpose(1, 4, 5, 0, 2, 3).reshape(c * 9, -1)
        y = w.reshape(k, -1) @ cols
        d = dy.transpose(1, 0, 2, 3).reshape(k, -1)
        d @ cols.T  # dW
        w.reshape(k, -1).T @ d  # dcols (col2im not counted: the reference is generous)
        return y

    return step


def numbacnn_conv(n, c, hw, k):
    conv = nc.layers.Conv2d(c, k, 3, padding=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    dy = rng.standard_normal((n, k, hw, hw)).astype(np.float32)
    return lambda: (conv.forward(x), conv.backward(dy))


def torch_conv(n, c, hw, k):
    conv = torch.nn.Conv2d(c, k, 3, padding=1)
    x = torch.randn(n, c, hw, hw, requires_grad=True)
    dy = torch.randn(n, k, hw, hw)

    def step():
        conv.zero_grad()
        conv(x).backward(dy)

    return step


# ------------------------------------------------------------------ the interleaved runner
def interleaved(engines, rounds, inner, syncs=None, warmups=1):
    """{engine: median seconds per call}; each round runs every engine ``inner`` times, in turn.

    ``syncs`` maps an engine to the call that waits for its queued device work (a GPU): it runs
    before and after each timed stretch. ``warmups`` untimed calls first (JIT compile, autotune).
    """
    syncs = syncs or {}
    times = {name: [] for name in engines}
    for fn in engines.values():
        for _ in range(warmups):
            fn()
    for _ in range(rounds):
        for name, fn in engines.items():
            sync = syncs.get(name, lambda: None)
            sync()
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            sync()
            times[name].append((time.perf_counter() - t) / inner)
    return {name: float(np.median(v)) for name, v in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "RESULTS.md"))
    parser.add_argument("--skip-resnet", action="store_true", help="leave out ResNet-20 (slowest row)")
    args = parser.parse_args()
    import numba

    if torch is not None:
        torch.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    lines = [
        f"# numbacnn vs references ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads: "
        f"numba {numba.config.NUMBA_NUM_THREADS}"
        + (f", torch {torch.get_num_threads()}" if torch else "")
        + f" (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')})"
        + f". Versions: numbacnn {nc.__version__}, numpy {np.__version__}, numba {numba.__version__}"
        + (f", torch {torch.__version__}" if torch else " (PyTorch not installed)")
        + f". Medians of {args.rounds} interleaved rounds; ratios are within this run.",
        "",
        "| workload | numbacnn | NumPy ref | PyTorch | numbacnn / PyTorch |",
        "|---|---|---|---|---|",
    ]

    def row(label, unit, ours, numpy_value=None, torch_value=None, higher_is_better=True):
        ratio = ""
        if torch_value:
            ratio = f"{(ours / torch_value) if higher_is_better else (torch_value / ours):.2f}x"
        fmt = (lambda v: f"{v:,.0f} {unit}") if unit == "img/s" else (lambda v: f"{v:.1f} {unit}")
        lines.append(
            f"| {label} | {fmt(ours)} | {fmt(numpy_value) if numpy_value else '-'} | "
            f"{fmt(torch_value) if torch_value else '-'} | {ratio} |"
        )
        print(lines[-1], flush=True)

    print("\n".join(lines))
    peak = bench.sgemm_peak(repeats=args.rounds)["gflops"]
    for n, c, hw, k in [(64, 32, 16, 32), (64, 64, 8, 64), (64, 16, 32, 16)]:
        engines = {"ours": numbacnn_conv(n, c, hw, k), "numpy": numpy_conv(n, c, hw, k)}
        if torch:
            engines["torch"] = torch_conv(n, c, hw, k)
        t = interleaved(engines, args.rounds, 3)
        flops = 3 * 2 * n * k * hw * hw * c * 9
        g = {name: flops / v / 1e9 for name, v in t.items()}
        row(
            f"conv2d fwd+bwd N={n} C={c} {hw}x{hw} K={k} 3x3 (sgemm peak {peak:.0f}; ours "
            f"{100 * g['ours'] / peak:.0f}% of it)",
            "GFLOP/s",
            g["ours"],
            g["numpy"],
            g.get("torch"),
        )
    workloads = [
        ("LeNet-5 training", "lenet5", 64, (1, 28, 28), numbacnn_train, torch_train, 10),
        ("LeNet-5 training", "lenet5", 256, (1, 28, 28), numbacnn_train, torch_train, 3),
        ("LeNet-5 inference", "lenet5", 256, (1, 28, 28), numbacnn_infer, torch_infer, 5),
    ]
    if not args.skip_resnet:
        workloads.append(("ResNet-20 training", "resnet20", 128, (3, 32, 32), numbacnn_train, torch_train, 1))
    for label, name, batch, shape, ours_fn, torch_fn, inner in workloads:
        engines = {"ours": ours_fn(name, batch, shape)}
        if torch:
            engines["torch"] = torch_fn(name, batch, shape)
        t = interleaved(engines, args.rounds, inner)
        row(f"{label}, batch {batch}", "img/s", batch / t["ours"], torch_value=batch / t["torch"] if torch else None)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
