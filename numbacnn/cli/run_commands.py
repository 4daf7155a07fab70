"""``numbacnn train | evaluate | predict | datasets``: parse, call the library, print.

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

from .main import main, process_started_at

EXIT_USAGE, EXIT_DATA, EXIT_CHECKPOINT, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 3, 4, 5, 130, 143


def _fail(message, code):
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


_SIGNAL_EXIT = {"SIGINT": EXIT_INTERRUPTED, "SIGTERM": EXIT_TERMINATED}
_received = []


def _interrupt_on(signum, frame):
    """Before training starts (data loading, compiling), SIGTERM stops like Ctrl-C does."""
    import signal

    _received.append(signal.Signals(signum).name)
    raise KeyboardInterrupt


TRAIN_EPILOG = """\b
Examples:
  numbacnn train lenet5                          # Fashion-MNIST, 10 epochs, good defaults
  numbacnn train resnet14 --epochs 15 --out runs/r14
  numbacnn train lenet5 --dataset synthetic --epochs 1
  numbacnn train lenet5 --resume runs/lenet5/checkpoint.npz

With matplotlib installed (pip install 'numbacnn[plot]') the run folder also gets
curves.png (loss and accuracy per epoch) and confusion.png (last validation).
"""


def _write_plots(trainer, config, classes, out):
    """curves.png and confusion.png in the run folder (nothing without matplotlib: --plots
    checked that before training)."""
    from .. import plots

    if not plots.available() or not trainer.history:
        return
    title = f"{config['model']} on {config['dataset']}"
    written = [plots.plot_history(trainer.history, os.path.join(out, "curves.png"), title)]
    if trainer.last_confusion is not None:
        written.append(
            plots.plot_confusion(trainer.last_confusion, list(classes), os.path.join(out, "confusion.png"), title)
        )
    click.echo("plots: " + ", ".join(written), err=True)


@main.command(epilog=TRAIN_EPILOG)
@click.argument("model", required=False)
@click.option(
    "--dataset",
    type=click.Choice(["fashion-mnist", "mnist", "cifar10", "synthetic"]),
    default=None,
    help="Data set (default fashion-mnist).",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default 10 for lenet5, 15 for resnets)."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Batch size (default 64 / 128).")
@click.option("--lr", type=FiniteFloat(0, low_open=True), default=None, help="Peak learning rate.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), default=None)
@click.option("--momentum", type=FiniteFloat(0, high=1), default=None)
@click.option("--weight-decay", type=FiniteFloat(0), default=None)
@click.option("--schedule", type=click.Choice(["cosine", "step", "constant"]), default=None)
@click.option("--augment/--no-augment", default=None, help="Random crop + flip (default on for resnets).")
@click.option("--label-smoothing", type=FiniteFloat(0, high=1), default=None)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default=None, help="Default cpu.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed for weights, data order and augmentation (default 0).",
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None, help="Folder searched first for data files."
)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run folder (default runs/MODEL).")
@click.option(
    "--resume",
    type=click.Path(dir_okay=False),
    default=None,
    help="Continue from a checkpoint exactly (only --device, --data-dir and --epochs may change).",
)
@click.option("--force", is_flag=True, help="Replace the run already in --out instead of refusing.")
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Also save a checkpoint every N steps (besides each epoch's end).",
)
@click.option(
    "--synthetic-size", type=click.IntRange(min=1), default=None, help="Training images of --dataset synthetic."
)
@click.option("--quiet", is_flag=True, help="No progress line.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON at the end.")
@click.option(
    "--plots/--no-plots",
    default=None,
    help="Write curves.png and confusion.png to the run folder (default: when matplotlib is installed).",
)
def train(model, resume, out, force, checkpoint_every, quiet, as_json, plots, **options):
    """Train MODEL (lenet5, resnet8, resnet14, resnet20, ...) and save checkpoints to --out."""
    import signal

    _received.clear()
    previous = signal.signal(signal.SIGTERM, _interrupt_on)
    try:
        _train(model, resume, out, force, checkpoint_every, quiet, as_json, plots, options)
    except KeyboardInterrupt:
        name = _received[-1] if _received else "SIGINT"
        click.echo(f"\n{'Ctrl-C' if name == 'SIGINT' else name}: stopped at once (nothing more was saved)", err=True)
        sys.exit(_SIGNAL_EXIT[name])
    finally:
        signal.signal(signal.SIGTERM, previous)


def _open_run_folder(out, model, resume, force):
    """The locked, writable RunFolder of this run (exit 2 naming the problem otherwise)."""
    from ..errors import RunFolderError
    from ..runs import RunFolder, next_free_folder

    if resume:
        path, fresh = out or os.path.dirname(os.path.abspath(resume)), False
    elif out:
        path, fresh = out, True
    else:
        default = os.path.join("runs", model)
        path, fresh = (default if force else next_free_folder(default)), True
    try:
        return RunFolder(path, fresh=fresh, force=force)
    except RunFolderError as e:
        _fail(str(e), EXIT_USAGE)


def _train(model, resume, out, force, checkpoint_every, quiet, as_json, plots, options):
    from .. import plots as plotting
    from ..config import build_trainer, resolve_config, resume_config, usable_device
    from ..device import DeviceError
    from ..errors import CheckpointError, RunFolderError, TrainingDiverged

    if plots and not plotting.available():
        _fail("--plots needs matplotlib: pip install 'numbacnn[plot]'", EXIT_USAGE)
    ckpt = None
    if resume:
        ckpt = _load_checkpoint(resume)
        saved = ckpt[3]["config"]
        if model and model != saved["model"]:
            _fail(f"--resume: the checkpoint is a {saved['model']}, not a {model}", EXIT_USAGE)
        try:
            config = resume_config(saved, options)
        except ValueError as e:
            _fail(str(e), EXIT_USAGE)
        config["device"], note = usable_device(saved["device"], options["device"])
        if note:
            click.echo(f"note: {note}", err=True)
    else:
        if not model:
            raise click.UsageError("missing MODEL (e.g. lenet5, resnet20); see --help")
        try:
            config = resolve_config(model, **options)
        except ValueError as e:
            raise click.UsageError(str(e))
    with _open_run_folder(out, config["model"], resume, force) as folder:
        out = folder.path
        dataset = _load_data(config)
        try:
            trainer = build_trainer(config, dataset, out_dir=out, progress=not quiet, checkpoint_every=checkpoint_every)
        except DeviceError as e:
            _fail(str(e), EXIT_USAGE)
        except ValueError as e:
            raise click.UsageError(str(e))
        if ckpt:
            try:
                trainer.restore(*ckpt, source=resume)
            except (KeyError, ValueError, CheckpointError) as e:
                _fail(f"{resume} does not fit this model: {e}", EXIT_CHECKPOINT)
            click.echo(f"resuming {config['model']} at epoch {trainer.epoch + 1}, batch {trainer.batch}", err=True)
        else:
            click.echo(
                f"training {config['model']} on {config['dataset']} ({len(dataset.train_images)} images) "
                f"for {config['epochs']} epochs; run folder {out}",
                err=True,
            )
        try:
            status = trainer.fit(config["epochs"])
        except TrainingDiverged as e:
            _fail(str(e), EXIT_DIVERGED)
        except RunFolderError as e:
            _fail(str(e), EXIT_USAGE)
        if plots is not False:
            _write_plots(trainer, config, list(dataset.classes), out)
    first_step_s = None
    if trainer.first_step_done_at is not None:
        first_step_s = round(trainer.first_step_done_at - process_started_at(), 3)
        if not quiet:
            click.echo(f"first training step done {first_step_s:.2f} s after the process started", err=True)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "status": status,
                    "history": trainer.history,
                    "checkpoint": trainer.checkpoint_path,
                    "first_step_s": first_step_s,
                    "run_folder": out,
                }
            )
        )
    if status == "interrupted":
        sys.exit(_SIGNAL_EXIT.get(trainer.stopped_by, EXIT_INTERRUPTED))
    if trainer.history and "val_acc" in trainer.history[-1] and not as_json:
        click.echo(f"test accuracy {100 * trainer.history[-1]['val_acc']:.2f}%  checkpoint {trainer.checkpoint_path}")


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
    result = run_eval(model, test_loader(config, dataset), CrossEntropyLoss(), dataset.num_classes)
    precision, recall = metrics.per_class(result["confusion"])
    if plot_path:
        plots.plot_confusion(
            result["confusion"],
            list(dataset.classes),
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
                    "classes": list(dataset.classes),
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
    click.echo(metrics.format_report(result["confusion"], dataset.classes))


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
    from ..config import build_model, data_facts
    from ..errors import ImageError
    from ..images import read_image
    from ..layers import Softmax

    model_state, _, _, meta = _load_checkpoint(checkpoint)
    config = dict(meta["config"], device="cpu")
    try:
        facts = data_facts(config)
    except (KeyError, TypeError) as e:
        _fail(f"{checkpoint}: the checkpoint does not record its data set's {e}", EXIT_CHECKPOINT)
    shape, classes, mean, std = facts.image_shape, facts.classes, facts.mean, facts.std
    try:
        model = build_model(config, facts)
        model.load_state_dict(model_state)
    except (KeyError, ValueError, TypeError) as e:
        _fail(f"{checkpoint}: {e}", EXIT_CHECKPOINT)
    model.eval()
    try:
        batch = np.stack([read_image(p, shape) for p in images])
    except ImageError as e:
        _fail(str(e), EXIT_DATA)
    batch = (batch / np.float32(255) - np.asarray(mean, np.float32).reshape(1, -1, 1, 1)) / np.asarray(
        std, np.float32
    ).reshape(1, -1, 1, 1)
    probs = Softmax()(model(np.ascontiguousarray(batch, dtype=np.float32)))
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
