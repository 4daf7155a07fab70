"""Where a training step's time goes: every CPU kernel call timed in place, summed per kernel
(convolutions per layer shape and direction), over a few warm steps.

    python benchmarks/profile_step.py [MODEL] [BATCH] [--input C,H]    (default resnet20 128 1,28)

The kernels are wrapped at ``numbacnn.kernels.cpu``, where the layers look them up, so the figures
include each kernel's Python wrapper and copies but not the layer code around it ("other").
"""

import argparse
import collections
import os
import sys
import time

# Time the numbacnn of this checkout, whatever an installed copy elsewhere says.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

import numbacnn as nc  # noqa: E402
from numbacnn.kernels import cpu  # noqa: E402


def _instrument(totals):
    def timed(name, function):
        def call(*args, **kwargs):
            started = time.perf_counter()
            result = function(*args, **kwargs)
            totals[name(*args) if callable(name) else name] += time.perf_counter() - started
            return result

        return call

    def conv_name(direction):
        def name(first, x_or_dw, w_or_db, b_or_dy, *rest):
            x, w = (x_or_dw, w_or_db) if direction == "fwd" else (rest[0], rest[1])
            stride = (rest[0] if direction == "fwd" else rest[2])[0]
            skipped = " (no dx)" if direction == "bwd" and first is None else ""
            return (
                f"conv {direction} {x.shape[1]}->{w.shape[0]} {x.shape[2]}x{x.shape[3]} "
                f"k{w.shape[2]} s{stride}{skipped}"
            )

        return name

    for kernel in cpu.__all__:
        if kernel == "conv2d_forward":
            setattr(cpu, kernel, timed(conv_name("fwd"), getattr(cpu, kernel)))
        elif kernel == "conv2d_backward":
            setattr(cpu, kernel, timed(conv_name("bwd"), getattr(cpu, kernel)))
        else:
            setattr(cpu, kernel, timed(kernel, getattr(cpu, kernel)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="resnet20")
    parser.add_argument("batch", nargs="?", type=int, default=128)
    parser.add_argument("--input", default="1,28", help="channels,size of the images")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    channels, size = (int(v) for v in args.input.split(","))
    totals = collections.defaultdict(float)
    _instrument(totals)
    model = nc.models.create(args.model, channels, 10, size)
    model.first_layer().input_grad = False
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, channels, size, size)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    criterion = nc.losses.CrossEntropyLoss()
    optimizer = nc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad()
        criterion.forward(model.forward(x), y)
        model.backward(criterion.backward())
        optimizer.step()

    for _ in range(3):
        step()
    totals.clear()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - started) / args.steps
    print(f"{args.model}, batch {args.batch}, {channels}x{size}x{size}: step {per_step * 1e3:.1f} ms = "
          f"{args.batch / per_step:.0f} images/s")  # fmt: skip
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {seconds / args.steps * 1e3:8.2f} ms  {name}")
    kernels = sum(totals.values()) / args.steps
    print(f"  {(per_step - kernels) * 1e3:8.2f} ms  other (layers, Python)")


if __name__ == "__main__":
    main()
