"""``numbacnn evaluate | predict | datasets``. What every command shares is in common.py;
``train`` is in train_command.py."""

import json
import os

import click
import numpy as np

from .common import (
    EXIT_CHECKPOINT,
    EXIT_DATA,
    EXIT_USAGE,
    checkpoint_model,
    fail,
    load_checkpoint_or_exit,
    output_names,
    read_batch,
    weights_of,
)
from .main import main

TTA_OPTION = click.option(
    "--tta",
    type=click.Choice(["flip"]),
    default=None,
    help="Test-time augmentation: average the softmax of each image and of its mirror "
    "(for checkpoints trained with flips, --augment).",
)


def _check_tta(tta, config, checkpoint):
    """Exit 2 for --tta flip on a checkpoint trained without flips: there a mirror image is not an
    image of the same class to the model, and averaging over it would be a guess."""
    if tta == "flip" and not config.get("augment"):
        fail(
            f"--tta flip: {checkpoint} was trained without flips (--no-augment), so a mirrored image is "
            "not one the model learned to see as the same class; leave --tta out",
            EXIT_USAGE,
        )


@main.command(
    epilog="\b\nExamples:\n  numbacnn evaluate runs/lenet5/checkpoint.npz\n  numbacnn evaluate CKPT --json\n"
    "  numbacnn evaluate CKPT --tta flip               # mean of each image and its mirror\n"
    "  numbacnn evaluate CKPT --plot confusion.png     # needs matplotlib"
)
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--dataset",
    default=None,
    metavar="NAME|PATH",
    help="Evaluate on this data set's test split (default: the checkpoint's), preprocessed as in training.",
)
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
@TTA_OPTION
def evaluate(checkpoint, dataset, data_dir, device, as_json, plot_path, tta):
    """Test-set accuracy (top-1, top-5), per-class precision/recall and confusion matrix."""
    from ..losses import CrossEntropyLoss
    from ..runtime.device import DeviceError
    from ..training import metrics
    from ..training.config import build_model, evaluation_loader
    from ..training.evaluation import evaluate as run_eval
    from ..training.resuming import usable_device
    from .data_options import evaluation_data

    model_state, _, _, meta = load_checkpoint_or_exit(checkpoint)
    config = dict(meta["config"], data_dir=data_dir or meta["config"].get("data_dir"))
    _check_tta(tta, config, checkpoint)
    config["device"], note = usable_device(config["device"], device)
    if note:
        click.echo(f"note: {note}", err=True)
    dataset = evaluation_data(config, dataset, checkpoint)
    try:
        model = build_model(config, dataset)
        model.load_state_dict(weights_of(model_state, meta))
    except DeviceError as e:
        fail(str(e), EXIT_USAGE)
    except (KeyError, ValueError, TypeError) as e:
        fail(f"{checkpoint}: {e}", EXIT_CHECKPOINT)
    from . import plots

    if plot_path and not plots.available():
        fail("--plot needs matplotlib: pip install 'numbacnn[plot]'", 2)
    classes = output_names(dataset.classes, model.output_shape((1, *dataset.image_shape))[1])
    result = run_eval(model, evaluation_loader(config, dataset), CrossEntropyLoss(), len(classes), tta=tta)
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
                    "tta": tta,
                    "classes": classes,
                    "precision": precision.tolist(),
                    "recall": recall.tolist(),
                    "confusion": result["confusion"].tolist(),
                }
            )
        )
        return
    click.echo(
        f"{config['model']} on {config['dataset']} test set ({result['samples']} images"
        f"{', flip TTA' if tta else ''}): "
        f"loss {result['loss']:.4f}  top-1 {100 * result['top1']:.2f}%  top-5 {100 * result['top5']:.2f}%\n"
    )
    click.echo(metrics.format_report(result["confusion"], classes))


OWN_DATA_LAYOUTS = """
Your own data (--dataset PATH):
  PATH/train/<class>/*, PATH/test/<class>/*   image folder with a test split (pip install 'numbacnn[images]')
  PATH/<class>/*                              image folder; --val-split 0.1 of each class held out
  FILE.npz                                    x_train, y_train, x_test, y_test (Keras' mnist.npz layout)
  FILE.csv                                    header row, then label and pixels per row (Kaggle's MNIST);
                                              test split from --test-data FILE or --val-split
Images are resized to --image-size and converted to --channels 1|3; a folder is decoded once and cached."""

PREDICT_CHUNK = 256  # images per forward pass: a large folder streams through in chunks


def _image_paths(arguments):
    """Files as given; folders walked (image files and .npy, sorted); exit 3 for a missing path."""
    from ..data.folders import image_files

    paths = []
    for argument in arguments:
        if os.path.isdir(argument):
            found = image_files(argument) + sorted(
                os.path.join(root, f) for root, _, files in os.walk(argument) for f in files if f.endswith(".npy")
            )
            if not found:
                fail(f"{argument}: the folder holds no images", EXIT_DATA)
            paths += found
        elif os.path.exists(argument):
            paths.append(argument)
        else:
            fail(f"{argument}: no such file or folder", EXIT_DATA)
    return paths


@main.command(
    epilog="\b\nExamples:\n  numbacnn predict runs/lenet5/checkpoint.npz shoe.png\n"
    "  numbacnn predict CKPT photos/ --top-k 1 --csv predictions.csv\n"
    "  numbacnn predict CKPT a.npy b.pgm --top-k 3 --json\n"
    "\nWith Pillow (pip install 'numbacnn[images]') any image format is read, converted to the model's\n"
    "channels and resized to its input, as training on an image folder does."
)
@click.argument("checkpoint", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", "--top", "top_k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write path,class,probability rows (top-k per image) to this CSV file.",
)
@TTA_OPTION
def predict(checkpoint, images, top_k, as_json, csv_path, tta):
    """Top-k class names with probabilities for each IMAGE file, or every image in a FOLDER."""
    from ..formats.atomic import atomic_write
    from ..training.evaluation import class_probabilities

    model, facts, config = checkpoint_model(checkpoint)
    _check_tta(tta, config, checkpoint)
    paths = _image_paths(images)
    results, classes = [], None
    for start in range(0, len(paths), PREDICT_CHUNK):
        chunk = paths[start : start + PREDICT_CHUNK]
        probs = class_probabilities(model, read_batch(chunk, facts), tta)
        classes = classes or output_names(facts.classes, probs.shape[1])
        for path, p in zip(chunk, probs):
            order = np.argsort(-p, kind="stable")[:top_k]
            top = [{"class": classes[i], "index": int(i), "probability": float(p[i])} for i in order]
            results.append({"image": path, "top": top})
            if not as_json:
                click.echo(path + ": " + ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in top))
    if csv_path:
        rows = ["path,class,probability"] + [
            f"{_csv_cell(r['image'])},{_csv_cell(t['class'])},{t['probability']:.6f}" for r in results for t in r["top"]
        ]
        atomic_write(csv_path, lambda f: f.write(("\n".join(rows) + "\n").encode()))
    if as_json:
        click.echo(json.dumps(results))


def _csv_cell(text):
    text = str(text)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


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
    click.echo(OWN_DATA_LAYOUTS)
