"""Each entry of the CPU convolution table on one layer, pass by pass: forward, input gradient and
weight gradient timed alone, the entries alternated in one process, medians of the repeats.

    python benchmarks/conv_entries.py LAYER [LAYER ...] [--batch 128] [--repeats 9] [--entries a,b]

A LAYER is C,K,H,KERNEL[,STRIDE[,PADDING]] (square planes and kernels; padding defaults to
KERNEL // 2): e.g. 16,32,28,3,2 for ResNet-20's first downsampling layer, 6,16,14,5,1,0 for
LeNet-5's conv2. Without --entries, every entry that can run the layer. For comparing two trees,
run it from each in fresh processes, alternated (benchmarks/NOTES.md).
"""

import argparse
import os
import sys
import time

# Time the numbacnn of this checkout, whatever an installed copy elsewhere says.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

from numbacnn.kernels.cpu.conv.dispatch import BIAS, IMPLEMENTATIONS, Geometry  # noqa: E402


def _layer(text):
    values = [int(v) for v in text.split(",")]
    if not 4 <= len(values) <= 6:
        raise argparse.ArgumentTypeError(f"{text!r}: expected C,K,H,KERNEL[,STRIDE[,PADDING]]")
    c, k, h, kernel = values[:4]
    stride = values[4] if len(values) > 4 else 1
    padding = values[5] if len(values) > 5 else kernel // 2
    return c, k, h, kernel, stride, padding


def _passes(entry, x, w, dy, g):
    out, dx, dw = np.empty_like(dy), np.empty_like(x), np.zeros_like(w)
    return {
        "forward": lambda: entry.forward(out, x, w, None, g),
        "input_grad": lambda: entry.backward(dx, None, None, dy, x, w, g),
        "weight_grad": lambda: entry.backward(None, dw, None, dy, x, w, g),
    }


def measure(layer, batch, repeats, names):
    """{(entry, pass): median seconds} for one layer, and the pass's floating-point operations."""
    c, k, h, kernel, stride, padding = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, h, h)).astype(np.float32)
    w = rng.standard_normal((k, c, kernel, kernel)).astype(np.float32)
    g = Geometry.of(x, w, (stride, stride), (padding, padding), (1, 1), 1)
    oh, ow = g.out_hw
    dy = rng.standard_normal((batch, k, oh, ow)).astype(np.float32)
    entries = [e for e in IMPLEMENTATIONS if e.passes != (BIAS,) and e.accepts(g) is None]
    if names:
        entries = [e for e in entries if e.name in names]
    runs = {}
    for entry in entries:
        for pass_, call in _passes(entry, x, w, dy, g).items():
            if pass_ in entry.passes:
                runs[(entry.name, pass_)] = call
    for call in runs.values():
        call()  # compile and warm the workspace
    times = {key: [] for key in runs}
    for _ in range(repeats):
        for key, call in runs.items():
            started = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - started)
    return {key: float(np.median(t)) for key, t in times.items()}, 2.0 * batch * oh * ow * k * c * kernel * kernel


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("layers", nargs="+", type=_layer, metavar="LAYER")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--entries", default="", help="comma-separated entry names (default: all that accept)")
    args = parser.parse_args()
    names = [n for n in args.entries.split(",") if n]
    for layer in args.layers:
        medians, flops = measure(layer, args.batch, args.repeats, names)
        c, k, h, kernel, stride, padding = layer
        print(f"{c}->{k} at {h}x{h}, {kernel}x{kernel} stride {stride} padding {padding}, batch {args.batch}:")
        for (name, pass_), seconds in medians.items():
            print(f"  {name:18s} {pass_:12s} {seconds * 1e3:8.2f} ms {flops / seconds / 1e9:7.1f} GFLOP/s")


if __name__ == "__main__":
    main()
