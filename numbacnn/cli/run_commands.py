"""``numbacnn evaluate | predict | datasets`` and what every command shares (exit codes, errors,
checkpoint and data loading). ``train`` is in train_command.py.

Exit codes: 0 success, 1 unexpected error, 2 bad usage (also: a run folder taken, locked or
unwritable), 3 data or image missing or corrupt, 4 checkpoint missing or corrupt, 5 training
diverged (non-finite loss or weights; no checkpoint written), 130 interrupted by Ctrl-C and 143 by
SIGTERM (a checkpoint was saved when training had started).
"""

import json
import math
import os
import sys

import click
import numpy as np

from .main import main

EXIT_USAGE, EXIT_DATA, EXIT_CHECKPOINT, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 3, 4, 5, 130, 143


def _fail(message, code):
    from ..distributed import launched_rank

    if launched_rank() == 0:  # under mpiexec every rank fails alike; one says why
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _download_progress(filename, done, total):
    if total:
        click.echo(f"\rdownloading {filename}: {100 * done // total}%", err=True, nl=done >= total)


def _load_data(config):
    from ..config import load_data
    from ..data import DataError

    try:
        return load_data(config, progress=_download_progress)
    except DataError as e:
        _fail(str(e), EXIT_DATA)
    except ValueError as e:  # options the data set cannot honour (e.g. an absurd --synthetic-size)
        _fail(str(e), EXIT_USAGE)


def _load_checkpoint(path):
    """(model_state, optim_state, sched_state, meta) with meta["config"] checked, or exit 4."""
    from ..checkpoint import CheckpointError, load_checkpoint
    from ..config import check_checkpoint_config

    try:
        model_state, optim_state, sched_state, meta = load_checkpoint(path)
        meta = dict(meta, config=check_checkpoint_config(meta, path))
    except CheckpointError as e:
        _fail(str(e), EXIT_CHECKPOINT)
    return model_state, optim_state, sched_state, meta


def checkpoint_model(checkpoint):
    """(model in eval mode on the CPU with the checkpoint's weights, its data facts, its config),
    or exit 4 naming what is wrong: for the commands that need no data set."""
    from ..config import build_model, data_facts

    model_state, _, _, meta = _load_checkpoint(checkpoint)
    config = dict(meta["config"], device="cpu")
    try:
        facts = data_facts(config)
    except (KeyError, TypeError) as e:
        _fail(f"{checkpoint}: the checkpoint does not record its data set's {e}", EXIT_CHECKPOINT)
    try:
        model = build_model(config, facts)
        model.load_state_dict(model_state)
    except (KeyError, ValueError, TypeError) as e:
        _fail(f"{checkpoint}: {e}", EXIT_CHECKPOINT)
    return model.eval(), facts, config


def read_batch(paths, facts):
    """The images at ``paths`` as one normalised float32 batch (N, C, H, W) for the checkpoint's
    data (``facts``: image_shape, mean, std), or exit 3 naming the unreadable file."""
    from ..errors import ImageError
    from ..images import read_image

    try:
        batch = np.stack([read_image(p, facts.image_shape) for p in paths])
    except ImageError as e:
        _fail(str(e), EXIT_DATA)
    mean = np.asarray(facts.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(facts.std, np.float32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray((batch / np.float32(255) - mean) / std, dtype=np.float32)


def output_names(classes, outputs):
    """Class names for each of a classifier's ``outputs`` (a head larger than the data's classes,
    from --num-classes, gets "output K" for the rest)."""
    return list(classes) + [f"output {k}" for k in range(len(classes), outputs)]


class FiniteFloat(click.ParamType):
    """A float that must be finite (no nan/inf) and >= ``low`` (> when ``low_open``), <= ``high``."""

    name = "float"

    def __init__(self, low=None, low_open=False, high=None):
        self.low, self.low_open, self.high = low, low_open, high

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            self.fail(f"{value!r} must be {'>' if self.low_open else '>='} {self.low}", param, ctx)
        if self.high is not None and number > self.high:
            self.fail(f"{value!r} must be <= {self.high}", param, ctx)
        return number


@main.command(
    epilog="\b\nExamples:\n  numbacnn evaluate runs/lenet5/checkpoint.npz\n  numbacnn evaluate CKPT --json\n"
    "  numbacnn evaluate CKPT --plot confusion.png     # needs matplotlib"
)
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print metrics as JSON.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the confusion matrix as a PNG image (needs matplotlib).",
)
def evaluate(checkpoint, data_dir, device, as_json, plot_path):
    """Test-set accuracy (top-1, top-5), per-class precision/recall and confusion matrix."""
    from .. import metrics
    from ..config import build_model, test_loader, usable_device
    from ..device import DeviceError
    from ..losses import CrossEntropyLoss
    from ..train import evaluate as run_eval

    model_state, _, _, meta = _load_checkpoint(checkpoint)
    config = dict(meta["config"], data_dir=data_dir or meta["config"].get("data_dir"))
    config["device"], note = usable_device(config["device"], device)
    if note:
        click.echo(f"note: {note}", err=True)
    dataset = _load_data(config)
    try:
        model = build_model(config, dataset)
        model.load_state_dict(model_state)
    except DeviceError as e:
        _fail(str(e), EXIT_USAGE)
    except (KeyError, ValueError, TypeError) as e:
        _fail(f"{checkpoint}: {e}", EXIT_CHECKPOINT)
    from .. import plots

    if plot_path and not plots.available():
        _fail("--plot needs matplotlib: pip install 'numbacnn[plot]'", 2)
    classes = output_names(dataset.classes, model.output_shape((1, *dataset.image_shape))[1])
    result = run_eval(model, test_loader(config, dataset), CrossEntropyLoss(), len(classes))
    precision, recall = metrics.per_class(result["confusion"])
    if plot_path:
        plots.plot_confusion(
            result["confusion"],
            classes,
            plot_path,
            f"{config['model']} on {config['dataset']}: top-1 {100 * result['top1']:.2f}%",
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "loss": result["loss"],
                    "top1": result["top1"],
                    "top5": result["top5"],
                    "samples": result["samples"],
                    "classes": classes,
                    "precision": precision.tolist(),
                    "recall": recall.tolist(),
                    "confusion": result["confusion"].tolist(),
                }
            )
        )
        return
    click.echo(
        f"{config['model']} on {config['dataset']} test set ({result['samples']} images): "
        f"loss {result['loss']:.4f}  top-1 {100 * result['top1']:.2f}%  top-5 {100 * result['top5']:.2f}%\n"
    )
    click.echo(metrics.format_report(result["confusion"], classes))


@main.command(
    epilog="\b\nExamples:\n  numbacnn predict runs/lenet5/checkpoint.npz shoe.png\n"
    "  numbacnn predict CKPT a.npy b.pgm --top 3 --json"
)
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--top", "top_k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def predict(checkpoint, images, top_k, as_json):
    """Top-k classes with probabilities for each IMAGE (PNG, PGM/PPM, or .npy of raw 0-255 pixels)."""
    from ..layers import Softmax

    model, facts, _ = checkpoint_model(checkpoint)
    classes = facts.classes
    batch = read_batch(images, facts)
    probs = Softmax()(model(batch))
    classes = output_names(classes, probs.shape[1])
    results = []
    for path, p in zip(images, probs):
        order = np.argsort(-p)[:top_k]
        results.append(
            {"image": path, "top": [{"class": classes[i], "index": int(i), "probability": float(p[i])} for i in order]}
        )
    if as_json:
        click.echo(json.dumps(results))
        return
    for r in results:
        click.echo(r["image"] + ": " + ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in r["top"]))


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True)
def datasets(data_dir, as_json):
    """Which data sets are available locally, and where (search order of --data-dir, $NUMBACNN_DATA,
    the user cache, /usr/share/datasets)."""
    from ..data import availability

    rows = availability(data_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        where = ", ".join(sorted({os.path.dirname(p) for p in r["files"].values()})) or (
            "generated in memory" if r["name"] == "synthetic" else ""
        )
        status = "available" if r["available"] else "missing"
        hint = "" if r["available"] or not r["apt_package"] else f"  (apt-get install {r['apt_package']})"
        click.echo(f"{r['name']:14s} {status:9s} {where}{hint}")
