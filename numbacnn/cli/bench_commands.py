"""``numbacnn bench``: kernels (CPU vs CUDA), a model per layer, and this machine's sgemm peak."""

import csv
import io
import json
import sys

import click

from .main import main

EPILOG = """\b
Examples:
  numbacnn bench peak
  numbacnn bench kernels                      # every op, forward and backward, CPU (and CUDA if present)
  numbacnn bench kernels --device cuda --csv
  numbacnn bench model lenet5 --batch-size 256
  numbacnn bench model resnet20 --batch-size 128 --device cuda --json
"""


def _emit(rows, as_json, as_csv, columns, extra=None):
    if as_json:
        click.echo(json.dumps({"rows": rows, **(extra or {})}, indent=1, default=float))
        return
    if as_csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()) if rows else columns)
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue().rstrip())
        return
    click.echo("  ".join(f"{c:>14s}" if i else f"{c:<22s}" for i, c in enumerate(columns)))
    for r in rows:
        cells = []
        for i, c in enumerate(columns):
            v = r.get(c)
            text = "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
            cells.append(f"{text:>14s}" if i else f"{text:<22s}")
        click.echo("  ".join(cells))


def _devices(choice):
    from ..runtime.devices import cuda_available

    if choice == "all":
        return ("cpu", "cuda") if cuda_available() else ("cpu",)
    return (choice,)


@main.group(epilog=EPILOG)
def bench():
    """Time kernels and models: median of repeats after a warm-up; JIT compile time apart."""


@bench.command()
@click.option("--size", type=int, default=1024, show_default=True, help="Matrix size n (n x n x n).")
@click.option("--repeats", type=click.IntRange(1), default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
def peak(size, repeats, as_json, as_csv):
    """The machine's FMA peak, from numbacnn's own micro-kernel in L1 on one thread and on all,
    beside OpenBLAS's sgemm (numpy): the ceilings CPU figures are compared with."""
    import numba

    from ..kernels.cpu.simd import LANES
    from ..tools import bench as harness

    rows = [harness.fma_peak(1, repeats)]
    if numba.get_num_threads() > 1:
        rows.append(harness.fma_peak(numba.get_num_threads(), repeats))
    rows.append(harness.sgemm_peak(size, repeats))
    _emit(rows, as_json, as_csv, ["op", "shape", "ms", "gflops", "spread"], {"simd_lanes": LANES})


@bench.command()
@click.option(
    "--device",
    type=click.Choice(["all", "cpu", "cuda"]),
    default="all",
    show_default=True,
    help="'all': the CPU, and CUDA when a GPU is present.",
)
@click.option(
    "--size",
    type=click.Choice(["default", "small"]),
    default="default",
    show_default=True,
    help="'small': batch 8 instead of 64.",
)
@click.option("--repeats", type=click.IntRange(1), default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
def kernels(device, size, repeats, as_json, as_csv):
    """Every op forward and backward over a grid of shapes, checked before timing."""
    from ..runtime.device import DeviceError
    from ..tools import bench as harness

    try:
        devices = _devices(device)
        peak_row = harness.sgemm_peak(repeats=repeats)
        rows = harness.kernel_rows(devices, repeats, size, peak_row["gflops"])
    except DeviceError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    _emit(
        rows,
        as_json,
        as_csv,
        ["op", "shape", "device", "direction", "ms", "gflops", "pct_peak", "speedup_vs_cpu", "check"],
        {"sgemm_peak_gflops": peak_row["gflops"]},
    )
    if not (as_json or as_csv):
        click.echo(f"sgemm peak (same run): {peak_row['gflops']:.1f} GFLOP/s; pct_peak is against it")
    if any(r["check"] != "ok" for r in rows):
        sys.exit(1)


@bench.command()
@click.argument("model_name", metavar="MODEL")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
def model(model_name, batch_size, device, repeats, as_json, as_csv):
    """Per-layer forward/backward times (like `caffe time`) and whole-step images/s of MODEL."""
    from ..runtime.device import DeviceError
    from ..tools import bench as harness

    try:
        rows, summary = harness.model_rows(model_name, batch_size, device, repeats)
    except (DeviceError, ValueError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    _emit(
        rows,
        as_json,
        as_csv,
        ["layer", "type", "output", "forward_ms", "backward_ms", "gflops_fwd"],
        {"summary": summary},
    )
    if not (as_json or as_csv):
        click.echo(
            f"{summary['model']} on {summary['device']}, batch {batch_size}: training step "
            f"{summary['train_step_ms']:.2f} ms = {summary['train_images_per_s']:.0f} images/s "
            f"(spread {100 * summary['train_spread']:.0f}%), inference "
            f"{summary['inference_images_per_s']:.0f} images/s; first step {summary['compile_s']:.2f} s"
        )
