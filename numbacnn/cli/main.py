"""``numbacnn`` click group and its small commands (summary, info)."""

import json
import os
import time

import click

from .pipes import GuardedGroup

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


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    "--input-shape", default=None, help="C,H,W of one input (default: 1,28,28 for lenet5, 3,32,32 for the others)."
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
    from ..runtime.environment import facts

    found = facts()
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        for k, v in found.items():
            click.echo(f"{k:24s} {v}")


@main.command(
    "compile",
    epilog="\b\nExamples:\n  numbacnn compile              # lenet5\n  numbacnn compile resnet20\n"
    "  numbacnn compile --all        # every registered model",
)
@click.argument("models_to_compile", metavar="[MODEL]...", nargs=-1)
@click.option("--all", "all_models", is_flag=True, help="Every registered model.")
def compile_kernels(models_to_compile, all_models):
    """Fill the JIT cache ahead of time, so the first training run starts at once.

    The first run after installing (or upgrading) numbacnn compiles every kernel it uses, which
    takes seconds; run this once after `pip install` (or in a Docker image build) to pay it then.
    """
    from .. import models
    from ..runtime import jit_cache
    from ..training.config import precompile

    names = list(models.REGISTRY) if all_models else list(models_to_compile or ["lenet5"])
    for name in names:
        try:
            seconds = precompile(name)
        except ValueError as e:
            raise click.UsageError(str(e))
        click.echo(f"{name}: kernels ready in {seconds:.1f} s")
    state = jit_cache.status()
    click.echo(f"JIT cache {state['path']}: {state['cached']} of {state['functions']} kernels compiled")
