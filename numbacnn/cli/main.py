"""``numbacnn`` click group and its small commands (summary, info)."""

import json
import os
import platform
import time

import click

EPILOG_SUMMARY = """\b
Examples:
  numbacnn summary lenet5
  numbacnn summary resnet20 --input-shape 3,32,32
  numbacnn summary lenet5 --json
"""


_IMPORTED_AT = time.time()


def process_started_at():
    """time.time() when this process started (Linux: from /proc; elsewhere: when the CLI loaded)."""
    try:
        with open("/proc/self/stat") as f:
            # Field 22 is the start time in clock ticks after boot; the name (field 2) may hold
            # spaces, so count from its closing parenthesis.
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="numbacnn")
def main():
    """numbacnn: a CNN engine written from scratch with Numba (CPU @njit and CUDA kernels)."""


def _parse_shape(text):
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated ints like 1,28,28, got {text!r}")
    if len(shape) != 3 or min(shape) < 1:
        raise click.BadParameter(f"expected C,H,W with positive sizes, got {text!r}")
    return shape


@main.command(epilog=EPILOG_SUMMARY)
@click.argument("model")
@click.option(
    "--input-shape", default=None, help="C,H,W of one input (default: 1,28,28 for lenet5, 3,32,32 for resnets)."
)
@click.option("--num-classes", default=10, show_default=True, type=click.IntRange(min=2))
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def summary(model, input_shape, num_classes, as_json):
    """Layer table of MODEL: output shapes, parameters, FLOPs."""
    from .. import models

    try:
        default = "1,28,28" if models.family(model) == "lenet" else "3,32,32"
        c, h, w = _parse_shape(input_shape or default)
        net = models.create(model, c, num_classes, h)
        table = net.summary((c, h, w))
    except ValueError as e:
        raise click.UsageError(str(e))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": model,
                    "input_shape": [c, h, w],
                    "layers": table.as_dicts(),
                    "total_params": table.total_params,
                    "total_flops": table.total_flops,
                },
                indent=2,
            )
        )
    else:
        click.echo(str(table))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info(as_json):
    """Versions, CPU threads, threading layer, CUDA devices (or why there are none)."""
    import numba
    import numpy as np

    from .. import __version__
    from ..device import CPU, cuda_available

    # numba picks its threading layer at the first parallel call: make one, then ask.
    CPU.ops.fill(np.empty(4, np.float32), 0)
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = numba.config.THREADING_LAYER
    facts = {
        "numbacnn": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "cpu_threads": numba.config.NUMBA_NUM_THREADS,
        "threading_layer": layer,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT", ""),
        "cuda_simulator": os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1",
    }
    if facts["cuda_simulator"]:
        facts["cuda_devices"] = ["numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1: kernels run as Python)"]
    elif cuda_available():
        facts["cuda_devices"] = _gpu_names()
    else:
        facts["cuda_devices"] = []
        facts["cuda_unavailable_reason"] = "numba.cuda.is_available() is False (no NVIDIA driver/GPU found)"
    if as_json:
        click.echo(json.dumps(facts, indent=2))
    else:
        for k, v in facts.items():
            click.echo(f"{k:24s} {v}")


def _gpu_names():
    """'NAME (compute capability X.Y)' for every GPU numba can see."""
    from numba import cuda

    names = []
    for gpu in cuda.gpus:
        with gpu:
            dev = cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
            names.append(f"{name} (compute capability {dev.compute_capability[0]}.{dev.compute_capability[1]})")
    return names
