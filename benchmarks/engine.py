"""CPU engine figures, all in one process: sgemm peak, conv2d forward+backward GFLOP/s, LeNet-5
training images/s. Run: python benchmarks/engine.py [--repeats 7]

Each figure is the median of ``repeats`` timed rounds after a warm-up round (JIT compile excluded);
conv rows are interleaved with sgemm rounds so the ratio compares like with like.
"""
import argparse
import time

import numpy as np

import numbacnn as nc


def median_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def sgemm_gflops(repeats, n=1024):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.copy()
    out = np.empty_like(a)
    t = median_time(lambda: np.matmul(a, b, out=out), repeats)
    return 2 * n ** 3 / t / 1e9


def conv_gflops(n, c, hw, k, repeats):
    conv = nc.layers.Conv2d(c, k, 3, padding=1, bias=True)
    x = np.random.default_rng(0).standard_normal((n, c, hw, hw)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal((n, k, hw, hw)).astype(np.float32)

    def step():
        conv.forward(x)
        conv.backward(dy)
    t = median_time(step, repeats)
    flops = 3 * 2 * n * k * hw * hw * c * 9  # forward, dx and dw GEMMs
    return flops / t / 1e9, t


def lenet_images_per_s(batch, repeats, steps=20):
    model = nc.models.lenet5()
    model.first_layer().input_grad = False  # as the Trainer does: no gradient w.r.t. the images
    opt = nc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    crit = nc.losses.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)

    def run():
        for _ in range(steps):
            opt.zero_grad()
            crit.forward(model.forward(x), y)
            model.backward(crit.backward())
            opt.step()
    t = median_time(run, repeats, warmup=1)
    return batch * steps / t


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import numba
    print(f"threads={numba.config.NUMBA_NUM_THREADS}  numpy {np.__version__}  numba {numba.__version__}")
    print("| measurement | value | sgemm GFLOP/s (same run) | % of sgemm |")
    print("|---|---|---|---|")
    for (n, c, hw, k) in [(64, 16, 32, 16), (64, 64, 8, 64)]:
        peak = sgemm_gflops(args.repeats)
        g, t = conv_gflops(n, c, hw, k, args.repeats)
        peak = 0.5 * (peak + sgemm_gflops(args.repeats))
        print(f"| conv2d fwd+bwd N={n} C={c} {hw}x{hw} K={k} 3x3 pad1 | {g:.1f} GFLOP/s ({t * 1e3:.1f} ms) "
              f"| {peak:.1f} | {100 * g / peak:.0f}% |")
    for batch in (64, 256):
        print(f"| LeNet-5 training, batch {batch} | {lenet_images_per_s(batch, args.repeats):.0f} images/s | | |")


if __name__ == "__main__":
    main()
