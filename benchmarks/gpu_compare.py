"""numbacnn's CUDA kernels against PyTorch on the same GPU, interleaved in one process.

    python benchmarks/gpu_compare.py [--rounds 5] [--out benchmarks/RESULTS_GPU.md]

Needs a CUDA GPU; PyTorch (with CUDA) is the optional reference. Every timed call ends with a
device synchronisation, and inputs live on the GPU: the figures are kernel work plus launch
overhead, which at LeNet sizes is most of it (numba launches cost microseconds each from Python).
"""

import argparse
import os
import sys
import time

import numbacnn as nc

sys.path.insert(0, os.path.dirname(__file__))
# The same workloads and runner as the CPU table, on the GPU.
from compare import interleaved, numbacnn_infer, numbacnn_train, torch, torch_infer, torch_train  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "RESULTS_GPU.md"))
    args = parser.parse_args()
    import numba
    from numba import cuda

    device = nc.get_device("cuda")
    gpu = cuda.get_current_device()
    have_torch = torch is not None and torch.cuda.is_available()
    lines = [
        f"# numbacnn CUDA vs PyTorch CUDA ({time.strftime('%Y-%m-%d')})",
        "",
        f"GPU: {gpu.name.decode() if isinstance(gpu.name, bytes) else gpu.name} "
        f"(compute capability {'.'.join(map(str, gpu.compute_capability))}). Versions: numbacnn "
        f"{nc.__version__}, numba {numba.__version__}"
        + (f", torch {torch.__version__}" if have_torch else " (PyTorch with CUDA not available)")
        + f". Medians of {args.rounds} interleaved rounds; float32; data on the GPU.",
        "",
        "| workload | numbacnn CUDA | PyTorch CUDA | numbacnn / PyTorch |",
        "|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    workloads = [
        ("LeNet-5 training", "lenet5", 64, (1, 28, 28), numbacnn_train, torch_train, 20),
        ("LeNet-5 training", "lenet5", 256, (1, 28, 28), numbacnn_train, torch_train, 20),
        ("LeNet-5 inference", "lenet5", 256, (1, 28, 28), numbacnn_infer, torch_infer, 20),
        ("ResNet-20 training", "resnet20", 128, (3, 32, 32), numbacnn_train, torch_train, 5),
        ("ResNet-20 inference", "resnet20", 128, (3, 32, 32), numbacnn_infer, torch_infer, 5),
    ]
    for label, name, batch, shape, ours_fn, torch_fn, inner in workloads:
        engines, syncs = {"ours": ours_fn(name, batch, shape, device)}, {"ours": device.synchronize}
        if have_torch:
            engines["torch"], syncs["torch"] = torch_fn(name, batch, shape, "cuda"), torch.cuda.synchronize
        t = interleaved(engines, args.rounds, inner, syncs, warmups=3)
        ours = batch / t["ours"]
        theirs = batch / t["torch"] if have_torch else None
        lines.append(
            f"| {label}, batch {batch} | {ours:,.0f} img/s | "
            + (f"{theirs:,.0f} img/s | {ours / theirs:.2f}x |" if theirs else "- | |")
        )
        print(lines[-1], flush=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
