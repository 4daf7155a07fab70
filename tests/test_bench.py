"""The timing harness and `numbacnn bench`: rows, compile time kept apart, checks that can fail."""

import json
import time

import numpy as np

from numbacnn.runtime import devices
from numbacnn.tools import bench


def test_time_call_reports_the_first_call_apart():
    calls = []

    def fn():
        time.sleep(0.05 if not calls else 0.001)
        calls.append(1)

    t = bench.time_call(fn, repeats=5)
    assert t["compile_s"] >= 0.05 and t["median_s"] < 0.02 and t["repeats"] == 5 == len(calls) - 1
    assert t["min_s"] <= t["median_s"] <= t["max_s"]


def test_kernel_rows_check_then_time():
    rows = bench.kernel_rows(("cpu",), repeats=1, size="small", peak_gflops=100.0)
    ops = {r["op"] for r in rows}
    assert {"conv2d", "maxpool2d", "linear", "batchnorm2d", "relu", "basic_block"} <= ops
    assert all(r["check"] == "ok" and r["ms"] > 0 for r in rows)
    conv = next(r for r in rows if r["op"] == "conv2d" and r["direction"] == "forward")
    assert conv["gflops"] > 0 and conv["pct_peak"] == 100 * conv["gflops"] / 100.0


def test_a_wrong_kernel_fails_the_check(monkeypatch):
    import numbacnn.kernels.cpu as cpu

    real = cpu.relu_forward
    monkeypatch.setattr(cpu, "relu_forward", lambda out, x: (real(out, x), cpu.fill(out.reshape(-1)[:1], 7.0)))
    rows = [r for r in bench.kernel_rows(("cpu",), repeats=1, size="small") if r["op"] == "relu"]
    assert rows and all(r["check"] == "MISMATCH" for r in rows)


def test_model_rows_cover_every_layer():
    rows, summary = bench.model_rows("lenet5", batch_size=8, repeats=1)
    assert [r["type"] for r in rows][:3] == ["Conv2d", "ReLU", "MaxPool2d"] and len(rows) == 12
    assert summary["train_images_per_s"] > 0 and summary["inference_images_per_s"] > 0
    # Timings are only checked to be measured (positive, finite): comparing two of them (the layers'
    # sum against the whole step) failed on a noisy machine, and tests assert no speeds.
    times = [r["forward_ms"] for r in rows] + [r["backward_ms"] for r in rows] + [summary["train_step_ms"]]
    assert all(np.isfinite(t) and t >= 0 for t in times) and summary["train_step_ms"] > 0
    assert sum(r["forward_ms"] for r in rows) > 0
    _, resnet = bench.model_rows("resnet8", batch_size=2, repeats=1)
    assert resnet["model"] == "resnet8"


def test_bench_cli(monkeypatch, cli):
    r = cli("bench", "peak", "--size", 256, "--repeats", 2, "--json")
    peak = json.loads(r.output)
    assert r.exit_code == 0 and peak["simd_lanes"] in (4, 8, 16)
    assert peak["rows"][-1]["op"] == "sgemm"
    assert peak["rows"][0]["op"].startswith("fma micro-kernel") and all(row["gflops"] > 0 for row in peak["rows"])
    r = cli("bench", "model", "lenet5", "--batch-size", 4, "--repeats", 1, "--csv")
    assert r.exit_code == 0 and r.output.splitlines()[0].startswith("layer,type,output")
    assert "error: unknown model" in cli("bench", "model", "vgg", "--repeats", 1).output
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    r = cli("bench", "kernels", "--device", "cuda", "--repeats", 1)
    assert r.exit_code == 2 and "NUMBA_ENABLE_CUDASIM" in r.output
