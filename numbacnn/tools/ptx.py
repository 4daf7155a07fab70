"""Compile every CUDA kernel to PTX without a GPU, with the argument types real launches use.

    python -m numbacnn.tools.ptx [--cc 9.0] [--json]

numba's simulator runs kernels as Python and never type-checks them, so a kernel can pass the
whole simulator suite and still fail to compile on a GPU. This closes that gap in two steps:

1. A subprocess in the simulator runs every layer, loss and optimizer once at small sizes and
   records the argument types of each kernel launch.
2. This process compiles each recorded (kernel, signature) to PTX with NVVM, as a GPU run would,
   and counts float64 instructions: in a float32 kernel they are usually an accidental promotion
   (a bare ``1.0`` or ``0.0``), and consumer GPUs run float64 at 1/32 to 1/64 of the float32 rate.

Needs NVVM, which ``pip install numbacnn[cuda]`` brings (nvidia-cuda-nvcc); no GPU or driver.
"""

import argparse
import json
import os
import subprocess
import sys

# Kernels whose float64 arithmetic is deliberate: sums of many values (statistics, bias gradients,
# losses, window sums) accumulate in float64 for accuracy, as the CPU kernels do.
FLOAT64_BY_DESIGN = {
    "_channel_sums",
    "_batch_stats",
    "_running_stats",
    "_grad_sums",
    "_moments",
    "_synced_grad_sums",
    "_column_sums",
    "_ce_forward",
    "_ce_backward",
    "_softmax_fwd",
    "_softmax_bwd",
    "_mse_forward",
    "_avg_fwd",
    "_avg_bwd",
    "_global_avg_fwd",
    "_adaptive_avg_fwd",
    "_adaptive_avg_bwd",
    "_prelu_weight_grad",
    "_dropout_fwd",
}


def _type_name(value):
    import numba
    import numpy as np

    array = getattr(value, "_ary", value)  # the simulator's device arrays wrap numpy arrays
    if isinstance(array, np.ndarray) and array.ndim > 0:
        layout = ", ".join([":"] * (array.ndim - 1) + ["::1" if array.flags.c_contiguous else ":"])
        return f"{numba.from_dtype(array.dtype)}[{layout}]"
    name = str(numba.typeof(value))
    return "boolean" if name == "bool" else name


def record():
    """(Simulator process.) Run a small workload; return {kernel key: [signatures]}."""
    import numpy as np
    from numba.cuda.simulator import kernel as sim_kernel

    import numbacnn as nc

    from .. import layers as L

    launches = {}
    original_call = sim_kernel.FakeCUDAKernel.__call__

    def recording_call(self, *args):
        if not self._device:
            key = f"{self.fn.__module__}:{self.fn.__qualname__}"
            sig = "void(" + ", ".join(_type_name(a) for a in args) + ")"
            launches.setdefault(key, set()).add(sig)
        return original_call(self, *args)

    sim_kernel.FakeCUDAKernel.__call__ = recording_call
    cuda = nc.get_device("cuda")
    rng = np.random.default_rng(0)

    def run(layer, shape):
        layer.to("cuda")
        y = layer.forward(cuda.asarray(rng.standard_normal(shape).astype(np.float32)))
        layer.backward(cuda.asarray(rng.standard_normal(tuple(y.shape)).astype(np.float32)))

    for layer, shape in [
        (L.Conv2d(2, 4, 3, padding=1), (2, 2, 4, 4)),
        (L.Conv2d(2, 2, 3, bias=False), (1, 2, 4, 4)),
        (L.MaxPool2d(2), (1, 2, 4, 4)),
        (L.AvgPool2d(2), (1, 2, 4, 4)),
        (L.AdaptiveAvgPool2d(1), (1, 2, 2, 2)),
        (L.Linear(3, 2), (2, 3)),
        (L.BatchNorm2d(2), (2, 2, 2, 2)),
        (L.ReLU(), (4,)),
        (L.LeakyReLU(), (4,)),
        (L.ELU(), (4,)),
        (L.Sigmoid(), (4,)),
        (L.Tanh(), (4,)),
        (L.Dropout(), (4,)),
        (L.Softmax(), (2, 3)),
        (L.BasicBlock(2, 2), (1, 2, 2, 2)),
        (L.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), (1, 2, 3, 3)),
        (L.PReLU(2), (1, 2, 2, 2)),
        (L.Maxout(2), (1, 2, 2, 2)),
        (L.Dropout2d(), (1, 2, 2, 2)),
        (L.Concat(L.ReLU(), L.Tanh()), (1, 2, 2, 2)),
        (L.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 4, 4)),
        (L.AdaptiveAvgPool2d(2), (1, 2, 3, 3)),
    ]:
        run(layer, shape)
    bn = L.BatchNorm2d(2).eval()
    run(bn, (1, 2, 2, 2))
    from ..distributed import World

    synced = L.BatchNorm2d(2)
    synced.process_group = World()  # the synchronised path, with a world of one rank
    run(synced, (2, 2, 2, 2))
    crit = nc.losses.CrossEntropyLoss()
    crit.forward(cuda.asarray(rng.standard_normal((2, 3)).astype(np.float32)), np.array([0, 2]))
    crit.backward()
    mse = nc.losses.MSELoss()
    mse.forward(cuda.zeros((2, 3)), cuda.zeros((2, 3)))
    mse.backward()
    for opt in (nc.optim.SGD, nc.optim.Adam):
        model = L.Linear(2, 2).to("cuda")
        opt(model.parameters(), lr=0.1).step()
    # A batch gathered on the device, with the argument types the DataLoader passes.
    images = rng.integers(0, 256, (3, 1, 4, 4)).astype(np.uint8)
    host = (images, np.arange(3, dtype=np.int64), np.array([2, 0]), np.ones(1, np.float32), np.zeros(1, np.float32))
    host += (np.zeros((2, 2), np.int64), np.zeros(2, np.bool_))
    cuda.ops.gather_batch(cuda.empty((2, 1, 4, 4)), cuda.empty(2, np.int64), *(cuda.asarray(a) for a in host), 1)
    return {k: sorted(v) for k, v in launches.items()}


def _kernel(key, signature):
    """The compiled-mode kernel behind a recorded key (factory kernels are rebuilt for their dtype)."""
    import importlib

    module_name, qualname = key.split(":")
    module = importlib.import_module(module_name)
    if qualname == "_build.<locals>.gemm":
        dtype = signature[len("void(") :].split("[")[0]
        return module._build(dtype, module.GPU_TILE).py_func
    return getattr(module, qualname).py_func


def compile_all(launches, cc):
    """{key: {signature, float64_instructions}}; raises on the first kernel that fails to compile."""
    from types import SimpleNamespace

    from numba import cuda
    from numba.cuda import dispatcher

    # Device functions called from a kernel are compiled for "the current device"; with no GPU
    # there is none, so name the target here.
    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)
    report = {}
    for key, signatures in sorted(launches.items()):
        for sig in signatures:
            ptx, _ = cuda.compile_ptx(_kernel(key, sig), sig, cc=cc)
            f64 = sum(1 for line in ptx.splitlines() if ".f64" in line and not line.lstrip().startswith("//"))
            report[f"{key} {sig}"] = {"kernel": key.split(":")[1].split(".")[-1], "float64_instructions": f64}
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cc", default="9.0", help="compute capability to compile for (default 9.0, H100)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--record", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.record:
        print(json.dumps(record()))
        return 0
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        parser.error("run without NUMBA_ENABLE_CUDASIM=1: step 2 needs the real numba-cuda compiler")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run(
        [sys.executable, "-m", "numbacnn.tools.ptx", "--record"], env=env, capture_output=True, text=True, check=True
    )
    launches = json.loads(done.stdout.strip().splitlines()[-1])
    cc = tuple(int(p) for p in args.cc.split("."))
    report = compile_all(launches, cc)
    unexpected = {
        k: v
        for k, v in report.items()
        if v["float64_instructions"] and v["kernel"] not in FLOAT64_BY_DESIGN and "float32[" in k
    }
    if args.json:
        print(json.dumps({"compiled": report, "unexpected_float64": sorted(unexpected)}, indent=1))
    else:
        for k, v in report.items():
            print(f"{v['float64_instructions']:4d} f64  {k}")
        print(
            f"{len(report)} kernel signatures compiled for sm_{cc[0]}{cc[1]}; "
            f"{len(unexpected)} float32 kernels with unexpected float64 instructions"
        )
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
