"""What data-parallel training pays per step in communication (benchmarks/NOTES.md, entry 25).

    mpiexec -n 2 python benchmarks/allreduce_cost.py

Times the all-reduce of a model's whole gradient buffer and the 4-value all-reduce every step
makes (loss, correct, images, stop flag), 500 calls each after 50 warm-up calls.
"""

import time

import numpy as np

import numbacnn as nc


def seconds_per_call(call, repeats=500, warmup=50):
    for _ in range(warmup):
        call()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats


def main():
    world = nc.distributed.init()
    for name in ("lenet5", "resnet20"):
        count = nc.models.create(name, 1, 10, 28).num_parameters()
        gradients = np.ones(count, np.float32)
        whole = seconds_per_call(lambda: world.allreduce_sum(gradients))
        small = seconds_per_call(lambda: world.sum_values(1.0, 2.0, 3.0, 0))
        if world.is_main:
            print(
                f"{name}: {count} parameters on {world.size} ranks: gradient all-reduce {whole * 1e6:.0f} us, "
                f"4-value all-reduce {small * 1e6:.1f} us"
            )


if __name__ == "__main__":
    main()
