"""``numbacnn evaluate | predict | datasets``. What every command shares is in common.py;
``train`` is in train_command.py."""

import json
import os

import click
import numpy as np

from .common import (
    EXIT_CHECKPOINT,
    EXIT_USAGE,
    checkpoint_model,
    fail,
    load_checkpoint_or_exit,
    load_data_or_exit,
    output_names,
    read_batch,
)
from .main import main


@main.command(
    epilog="\b\nExamples:\n  numbacnn evaluate runs/lenet5/checkpoint.npz\n  numbacnn evaluate CKPT --json\n"
    "  numbacnn evaluate CKPT --plot confusion.png     # needs matplotlib"
)
@click.argument("checkpoint", type=click.Path())
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
    from ..losses import CrossEntropyLoss
    from ..runtime.device import DeviceError
    from ..training import metrics
    from ..training.config import build_model, evaluation_loader, usable_device
    from ..training.evaluation import evaluate as run_eval

    model_state, _, _, meta = load_checkpoint_or_exit(checkpoint)
    config = dict(meta["config"], data_dir=data_dir or meta["config"].get("data_dir"))
    config["device"], note = usable_device(config["device"], device)
    if note:
        click.echo(f"note: {note}", err=True)
    dataset = load_data_or_exit(config)
    try:
        model = build_model(config, dataset)
        model.load_state_dict(model_state)
    except DeviceError as e:
        fail(str(e), EXIT_USAGE)
    except (KeyError, ValueError, TypeError) as e:
        fail(f"{checkpoint}: {e}", EXIT_CHECKPOINT)
    from . import plots

    if plot_path and not plots.available():
        fail("--plot needs matplotlib: pip install 'numbacnn[plot]'", 2)
    classes = output_names(dataset.classes, model.output_shape((1, *dataset.image_shape))[1])
    result = run_eval(model, evaluation_loader(config, dataset), CrossEntropyLoss(), len(classes))
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
@click.argument("checkpoint", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
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
