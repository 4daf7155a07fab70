"""The timing harness behind ``numbacnn bench`` and ``benchmarks/``. It returns rows (dicts);
printing them is the caller's job.

Rules every figure here follows:
* The first call is timed on its own and reported as ``compile_s`` (JIT compilation, first-touch
  allocation); it never enters a throughput figure.
* Device work is synchronised before each clock read (``device.synchronize()``; a no-op on the CPU).
* A figure is the median of ``repeats`` timed rounds; ``spread`` is (max - min) / median.
* Correctness is checked before timing: the CPU result against an independent NumPy float64
  forward (or, for ops without one, the same layer in float64), CUDA against the CPU. A row whose
  check fails says so in ``check`` and ``numbacnn bench kernels`` exits 1.
"""

import time

import numpy as np

from .. import layers as L
from ..losses import CrossEntropyLoss
from ..models import REGISTRY
from ..optim import SGD
from ..runtime.device import CPU
from ..runtime.devices import get_device


def time_call(fn, device=CPU, repeats=7, inner=1):
    """{compile_s, median_s, min_s, max_s, spread, repeats} for ``fn()`` (per call, inner calls per round)."""
    device.synchronize()
    t0 = time.perf_counter()
    fn()
    device.synchronize()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(max(1, repeats)):
        device.synchronize()
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        device.synchronize()
        times.append((time.perf_counter() - t) / inner)
    med = float(np.median(times))
    return {
        "compile_s": compile_s,
        "median_s": med,
        "min_s": min(times),
        "max_s": max(times),
        "spread": (max(times) - min(times)) / med if med > 0 else 0.0,
        "repeats": len(times),
    }


def sgemm_peak(n=1024, repeats=7):
    """GFLOP/s of an n x n float32 matrix product through numpy (OpenBLAS): our CPU ceiling."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
    out = np.empty_like(a)
    t = time_call(lambda: np.matmul(a, b, out=out), CPU, repeats)
    return {
        "op": "sgemm",
        "shape": f"{n}x{n}x{n}",
        "device": "cpu",
        "direction": "forward",
        "ms": 1e3 * t["median_s"],
        "spread": t["spread"],
        "gflops": 2 * n**3 / t["median_s"] / 1e9,
    }


def fma_peak(threads=1, repeats=7, k=256, inner=2000):
    """GFLOP/s of numbacnn's own GEMM micro-kernel (kernels/cpu/microkernel.py) on operands that
    stay in L1, on ``threads`` threads at once: the machine's FMA peak as numba code reaches it."""
    import numba

    from ..kernels.cpu import microkernel

    c, a, b = microkernel.operands(k, threads)
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        t = time_call(lambda: microkernel.fma_peak(c, a, b, inner), CPU, repeats)
    finally:
        numba.set_num_threads(previous)
    flops = 2 * microkernel.ROWS * microkernel.COLUMNS * k * inner * threads
    return {
        "op": f"fma micro-kernel, {threads} thread{'s' * (threads > 1)}",
        "shape": f"{microkernel.ROWS}x{microkernel.COLUMNS}x{k}",
        "device": "cpu",
        "direction": "forward",
        "ms": 1e3 * t["median_s"],
        "spread": t["spread"],
        "gflops": flops / t["median_s"] / 1e9,
    }


# (op name, layer factory, input shape, forward FLOPs of that layer at that shape)
def kernel_grid(size="default"):
    """The ops and shapes ``bench kernels`` times: each op at a LeNet-like and a ResNet-like size."""
    small = size == "small"
    n = 8 if small else 64
    return [
        ("conv2d", lambda: L.Conv2d(16, 16, 3, padding=1), (n, 16, 32, 32)),
        ("conv2d", lambda: L.Conv2d(64, 64, 3, padding=1), (n, 64, 8, 8)),
        ("conv2d", lambda: L.Conv2d(1, 6, 5, padding=2), (n, 1, 28, 28)),
        ("maxpool2d", lambda: L.MaxPool2d(2), (n, 16, 32, 32)),
        ("avgpool2d", lambda: L.AvgPool2d(2), (n, 16, 32, 32)),
        ("global_avgpool2d", lambda: L.AdaptiveAvgPool2d(1), (n, 64, 8, 8)),
        ("linear", lambda: L.Linear(400, 120), (n, 400)),
        ("linear", lambda: L.Linear(1024, 1024), (n, 1024)),
        ("relu", lambda: L.ReLU(), (n, 16, 32, 32)),
        ("batchnorm2d", lambda: L.BatchNorm2d(16), (n, 16, 32, 32)),
        ("dropout", lambda: L.Dropout(0.5), (n, 1024)),
        ("basic_block", lambda: L.BasicBlock(16, 32, 2), (n, 16, 32, 32)),
    ]


def _flops(layer, shape):
    try:
        return float(layer.flops(shape))
    except Exception:  # layers without a FLOP model
        return 0.0


def _numpy_forward(layer, x):
    """An independent NumPy float64 forward of ``layer`` for the ops of the grid (None if absent)."""
    x = x.astype(np.float64)
    if isinstance(layer, L.Conv2d) and layer.groups == 1 and layer.stride == (1, 1) and layer.dilation == (1, 1):
        ph, pw = layer.padding
        win = np.lib.stride_tricks.sliding_window_view(
            np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))), layer.kernel_size, axis=(2, 3)
        )
        out = np.einsum("nchwij,kcij->nkhw", win, layer.weight.data.astype(np.float64), optimize=True)
        return out + (0 if layer.bias is None else layer.bias.data.reshape(1, -1, 1, 1))
    if isinstance(layer, (L.MaxPool2d, L.AvgPool2d)) and layer.padding == (0, 0) and layer.stride == layer.kernel_size:
        (kh, kw), (n, c, h, w) = layer.kernel_size, x.shape
        blocks = x[:, :, : h // kh * kh, : w // kw * kw].reshape(n, c, h // kh, kh, w // kw, kw)
        return blocks.max(axis=(3, 5)) if isinstance(layer, L.MaxPool2d) else blocks.mean(axis=(3, 5))
    if isinstance(layer, L.AdaptiveAvgPool2d):
        return x.mean(axis=(2, 3), keepdims=True)
    if isinstance(layer, L.Linear):
        return x @ layer.weight.data.T.astype(np.float64) + (0 if layer.bias is None else layer.bias.data)
    if isinstance(layer, L.ReLU):
        return np.maximum(x, 0)
    if isinstance(layer, L.BatchNorm2d):
        mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
        return (x - mean) / np.sqrt(var + layer.eps) * layer.weight.data.reshape(1, -1, 1, 1) + layer.bias.data.reshape(
            1, -1, 1, 1
        )
    return None


def _check(layer_factory, shape, device, x, dy):
    """Relative error of ``device``'s forward (and input gradient) against a reference.

    CPU: an independent NumPy forward where the op has one, else the same layer in float64 (which
    catches precision loss, not logic errors). CUDA: the CPU run of the same weights.
    """
    from .. import init

    init.manual_seed(123)
    test = layer_factory().to(device)
    ref = layer_factory()
    ref.load_state_dict(test.state_dict())
    if hasattr(ref, "calls"):  # dropout: the same seed draws the same mask on every backend
        ref.seed = test.seed
    y = device.to_host(test.forward(device.asarray(x)))
    dx = device.to_host(test.backward(device.asarray(dy)))
    if device == CPU:
        ref_y, ref_dx = _numpy_forward(ref, x), None
        if ref_y is None:
            ref.to(np.float64)
            ref_y = ref.forward(x.astype(np.float64))
            ref_dx = ref.backward(dy.astype(np.float64))
    else:
        ref_y, ref_dx = ref.forward(x).copy(), ref.backward(dy).copy()
    scale = max(1.0, float(np.abs(ref_y).max()))
    err = float(np.abs(y - ref_y).max())
    if ref_dx is not None:
        err = max(err, float(np.abs(dx - ref_dx).max()))
    return err / scale


def kernel_rows(devices=("cpu",), repeats=7, size="default", peak_gflops=None):
    """One row per (op, shape, device, direction): ms, GFLOP/s, % of peak, check error."""
    rows = []
    rng = np.random.default_rng(0)
    for op, factory, shape in kernel_grid(size):
        x = rng.standard_normal(shape).astype(np.float32)
        probe = factory()
        out_shape = probe.output_shape(shape)
        flops = _flops(probe, shape)
        dy = rng.standard_normal(out_shape).astype(np.float32)
        for name in devices:
            device = get_device(name)
            err = _check(factory, shape, device, x, dy)
            layer = factory().to(device)
            x_dev, dy_dev = device.asarray(x), device.asarray(dy)
            fwd = time_call(lambda: layer.forward(x_dev), device, repeats)
            bwd = time_call(lambda: (layer.forward(x_dev), layer.backward(dy_dev)), device, repeats)
            bwd_only = max(bwd["median_s"] - fwd["median_s"], 1e-9)
            for direction, t, work in (("forward", fwd["median_s"], flops), ("backward", bwd_only, 2 * flops)):
                gflops = work / t / 1e9 if work else None
                rows.append(
                    {
                        "op": op,
                        "shape": "x".join(map(str, shape)),
                        "device": name,
                        "direction": direction,
                        "ms": 1e3 * t,
                        "spread": fwd["spread"] if direction == "forward" else bwd["spread"],
                        "gflops": gflops,
                        "pct_peak": 100 * gflops / peak_gflops if gflops and peak_gflops and name == "cpu" else None,
                        "compile_s": fwd["compile_s"] if direction == "forward" else bwd["compile_s"],
                        "check_error": err,
                        "check": "ok" if err < 1e-3 else "MISMATCH",
                    }
                )
    # CPU vs CUDA side by side: each non-CPU row gets its speed-up over the CPU row of the same case.
    cpu_ms = {(r["op"], r["shape"], r["direction"]): r["ms"] for r in rows if r["device"] == "cpu"}
    for r in rows:
        base = cpu_ms.get((r["op"], r["shape"], r["direction"]))
        r["speedup_vs_cpu"] = base / r["ms"] if base and r["device"] != "cpu" else None
    return rows


def stages(model):
    """[(name, layer)] in data-flow order: containers expanded, residual blocks kept whole."""
    if hasattr(model, "_layers"):
        names = [n for n, m in model._modules.items()]
        by_id = {id(m): n for n, m in model._modules.items()}
        out = []
        for layer in model._layers():
            sub = stages(layer)
            prefix = by_id.get(id(layer), names[0])
            out += [(f"{prefix}.{n}" if n else prefix, m) for n, m in sub] if len(sub) > 1 else [(prefix, layer)]
        return out
    if isinstance(model, L.Sequential):
        out = []
        for name, child in model._modules.items():
            sub = stages(child)
            out += [(f"{name}.{n}" if n else name, m) for n, m in sub] if len(sub) > 1 else [(name, child)]
        return out
    return [("", model)]


def model_rows(name, batch_size=64, device="cpu", repeats=5, input_shape=None, classes=10):
    """Per-layer forward/backward ms (the style of ``caffe time``) plus the whole training step.

    Returns (layer rows, summary dict with images/s for training and inference).
    """
    device = get_device(device)
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(sorted(REGISTRY))}")
    if input_shape is None:
        input_shape = (1, 28, 28) if name == "lenet5" else (3, 32, 32)
    model = REGISTRY[name](in_channels=input_shape[0], num_classes=classes, input_size=input_shape[1])
    model.to(device)
    model.first_layer().input_grad = False  # as in training: no gradient w.r.t. the images
    rng = np.random.default_rng(0)
    x = device.asarray(rng.standard_normal((batch_size,) + tuple(input_shape)).astype(np.float32))
    y = rng.integers(0, classes, batch_size)
    crit = CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        crit.forward(model.forward(x), y)
        model.backward(crit.backward())
        opt.step()

    train = time_call(step, device, repeats)
    model.eval()
    infer = time_call(lambda: model.forward(x), device, repeats)
    model.train()
    # Per layer: record each stage's input and upstream gradient once, then time it alone.
    rows, inputs, h = [], [], x
    for stage_name, layer in stages(model):
        inputs.append(h)
        h = layer.forward(h)
        h = h.copy() if isinstance(h, np.ndarray) else device.asarray(device.to_host(h))
    grads, g = [], device.asarray(rng.standard_normal(tuple(h.shape)).astype(np.float32) / batch_size)
    for (stage_name, layer), inp in reversed(list(zip(stages(model), inputs))):
        grads.append(g)
        layer.forward(inp)
        g = layer.backward(g)
        if g is not None:
            g = g.copy() if isinstance(g, np.ndarray) else device.asarray(device.to_host(g))
    grads.reverse()
    for (stage_name, layer), inp, grad in zip(stages(model), inputs, grads):
        fwd = time_call(lambda: layer.forward(inp), device, repeats)
        both = time_call(lambda: (layer.forward(inp), layer.backward(grad)), device, repeats)
        flops = _flops(layer, tuple(inp.shape))
        rows.append(
            {
                "layer": stage_name,
                "type": type(layer).__name__,
                "output": "x".join(map(str, layer.output_shape(tuple(inp.shape)))),
                "forward_ms": 1e3 * fwd["median_s"],
                "backward_ms": 1e3 * max(both["median_s"] - fwd["median_s"], 0.0),
                "gflops_fwd": flops / fwd["median_s"] / 1e9 if flops else None,
            }
        )
    summary = {
        "model": name,
        "device": device.name,
        "batch_size": batch_size,
        "train_step_ms": 1e3 * train["median_s"],
        "train_images_per_s": batch_size / train["median_s"],
        "train_spread": train["spread"],
        "inference_images_per_s": batch_size / infer["median_s"],
        "compile_s": train["compile_s"],
    }
    return rows, summary
