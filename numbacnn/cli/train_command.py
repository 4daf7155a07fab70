"""``numbacnn train``: one process, or data-parallel over MPI ranks (``mpiexec -n N ... --distributed``)."""

import json
import os
import sys

import click

from .common import (
    EXIT_CHECKPOINT,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    FiniteFloat,
    fail,
    load_checkpoint_or_exit,
    load_data_or_exit,
    output_names,
)
from .data_options import DATASET_HELP, ClassList, own_data_options
from .main import main, process_started_at
from .recipe_options import recipe_options

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
  numbacnn train lenet5 --dataset photos/ --image-size 28   # photos/<class>/*.jpg; needs numbacnn[images]
  numbacnn train lenet5 --resume runs/lenet5/checkpoint.npz
  mpiexec -n 2 numbacnn train resnet20 --distributed --sync-bn   # needs numbacnn[mpi]
  numbacnn train lenet5 --classes 0-4 --out runs/pre                 # transfer learning:
  numbacnn train lenet5 --classes 5-9 --per-class 50 --init-from runs/pre/checkpoint.npz --freeze 0 --freeze 3

With matplotlib installed (pip install 'numbacnn[plot]') the run folder also gets
curves.png (loss and accuracy per epoch) and confusion.png (last validation).
"""


def _write_plots(trainer, config, classes, out):
    """curves.png and confusion.png in the run folder (nothing without matplotlib: --plots
    checked that before training)."""
    from . import plots

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
@click.option("--dataset", default=None, metavar="NAME|PATH", help=DATASET_HELP)
@own_data_options
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default 10; 15 for resnets).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Batch size per rank (default 64 / 128).")
@click.option("--lr", type=FiniteFloat(0, low_open=True), default=None, help="Peak learning rate.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), default=None)
@click.option("--momentum", type=FiniteFloat(0, high=1), default=None)
@click.option("--weight-decay", type=FiniteFloat(0), default=None, help="Default 1e-3 for LeNet-5, else 5e-4.")
@click.option("--schedule", type=click.Choice(["cosine", "step", "constant"]), default=None)
@click.option("--augment/--no-augment", default=None, help="Random crop + flip (default on for resnets).")
@click.option("--label-smoothing", type=FiniteFloat(0, high=1), default=None, help="Default 0.1 for LeNet-5, else 0.")
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
    type=click.Path(),
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
@click.option(
    "--init-from",
    type=click.Path(),
    default=None,
    metavar="CKPT",
    help="Start from the weights of a checkpoint (.npz) or .safetensors file whose keys and shapes match.",
)
@click.option(
    "--freeze",
    multiple=True,
    metavar="PREFIX",
    help="Freeze the parameters under this module path (e.g. 0, layer1); repeatable.",
)
@click.option(
    "--num-classes", type=click.IntRange(min=1), default=None, help="Classifier outputs (default: the data's classes)."
)
@click.option(
    "--classes",
    "class_subset",
    type=ClassList(),
    default=None,
    metavar="LIST",
    help="Train and test on these classes only, relabelled in order (e.g. 0-4 or 5,7,9).",
)
@click.option(
    "--per-class",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Use only the first N training images of each class (few-shot fine-tuning).",
)
@click.option(
    "--adversarial",
    type=click.Choice(["fgsm"]),
    default=None,
    help="Adversarial training: replace part of each batch by its FGSM examples.",
)
@click.option(
    "--adv-eps",
    type=FiniteFloat(0, low_open=True, high=1),
    default=None,
    help="With --adversarial: the attack's eps in pixel units (0-1 of the pixel range; default 0.1).",
)
@click.option(
    "--adv-ratio",
    type=FiniteFloat(0, low_open=True, high=1),
    default=None,
    help="With --adversarial: the fraction of each batch replaced (default 0.5).",
)
@recipe_options
@click.option(
    "--distributed",
    is_flag=True,
    help="Data-parallel over the processes of mpiexec -n N (batch size per process; needs numbacnn[mpi]).",
)
@click.option(
    "--sync-bn/--no-sync-bn",
    default=None,
    help="With --distributed: BatchNorm statistics over every process's images (default: per process).",
)
@click.option("--quiet", is_flag=True, help="No progress line.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON at the end.")
@click.option(
    "--plots/--no-plots",
    default=None,
    help="Write curves.png and confusion.png to the run folder (default: when matplotlib is installed).",
)
def train(model, resume, out, force, checkpoint_every, quiet, as_json, plots, **options):
    """Train MODEL (lenet5, resnet8 ... resnet56, resnet29_bottleneck, vgg11_small, alexnet_small,
    inception_small) and save checkpoints to --out."""
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
    from ..training.runs import RunFolder, next_free_folder

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
        fail(str(e), EXIT_USAGE)


def _world(distributed):
    """The distributed.World of this run (exit 2 naming the problem when MPI is missing, or when
    mpiexec started several processes without --distributed)."""
    from .. import distributed as dist

    if not distributed:
        if dist.launched_size() > 1:
            fail(
                f"mpiexec started {dist.launched_size()} processes: add --distributed to train one model "
                f"on all of them (without it, each would train its own)",
                EXIT_USAGE,
            )
        return dist.World()
    try:
        world = dist.init()
    except (ImportError, RuntimeError) as e:
        fail(str(e), EXIT_USAGE)
    if world.size == 1:
        click.echo("note: --distributed outside mpiexec: training in this one process", err=True)
    return world


def _init_from(trainer, path, say):
    """Load the matching weights of ``path`` into the trainer's model and say what happened."""
    from ..errors import CheckpointError
    from ..formats.safetensors import load_state
    from ..training.config import load_matching

    try:
        state = load_state(path)
    except (CheckpointError, ValueError) as e:
        fail(str(e), EXIT_CHECKPOINT)
    loaded, skipped, new = load_matching(trainer.model, state)
    if not loaded:
        fail(f"--init-from {path}: no tensor matches this model in name and shape", EXIT_CHECKPOINT)
    say(f"init from {path}: loaded {len(loaded)} tensors", err=True)
    if skipped:
        say(f"  skipped (absent here or another shape): {', '.join(skipped)}", err=True)
    if new:
        say(f"  new (freshly initialised): {', '.join(new)}", err=True)


def _open_run_folder_on_main(world, out, model, resume, force):
    """Rank 0 opens (and locks) the run folder; every rank exits with its code if that fails.
    Other ranks get a folder of None: they write nothing."""
    import contextlib

    code, folder = 0, contextlib.nullcontext()
    if world.is_main:
        try:
            folder = _open_run_folder(out, model, resume, force)
        except SystemExit as e:
            code = e.code
    code = world.broadcast_object(code)
    if code:
        sys.exit(code)
    return folder


def _train(model, resume, out, force, checkpoint_every, quiet, as_json, plots, options):
    from ..errors import CheckpointError, RunFolderError, TrainingDiverged
    from ..runtime import quick_start
    from ..runtime.device import DeviceError
    from ..training.config import build_trainer, own_data_settings, resolve_config
    from ..training.resuming import rescale_for_world, resume_config, usable_device
    from . import plots as plotting

    if quick_start.enabled():  # numba's target starts while the data loads (quick_start.py)
        quick_start.state.numba_start()
    for option in ("adv_eps", "adv_ratio"):
        if options[option] is not None and not options["adversarial"]:
            raise click.UsageError(f"--{option.replace('_', '-')} needs --adversarial fgsm")
    world = _world(options.pop("distributed"))
    options["freeze"] = list(options["freeze"]) or None
    say = click.echo if world.is_main else (lambda *args, **kwargs: None)
    if plots and not plotting.available():
        fail("--plots needs matplotlib: pip install 'numbacnn[plot]'", EXIT_USAGE)
    ckpt = None
    if resume:
        ckpt = load_checkpoint_or_exit(resume)
        saved = ckpt[3]["config"]
        if model and model != saved["model"]:
            fail(f"--resume: the checkpoint is a {saved['model']}, not a {model}", EXIT_USAGE)
        try:
            config, note = rescale_for_world(resume_config(saved, options), world.size)
        except ValueError as e:
            fail(str(e), EXIT_USAGE)
        if note:
            say(f"note: {note}", err=True)
        config["device"], note = usable_device(saved["device"], options["device"])
        if note:
            say(f"note: {note}", err=True)
    else:
        if not model:
            raise click.UsageError("missing MODEL (e.g. lenet5, resnet20); see --help")
        try:
            config = resolve_config(model, **options)
        except ValueError as e:
            raise click.UsageError(str(e))
        for option in ("erasing_area", "erasing_ratio"):
            if options[option] is not None and not config["random_erasing"]:
                raise click.UsageError(f"--{option.replace('_', '-')} needs --random-erasing P")
    with _open_run_folder_on_main(world, out, config["model"], resume, force) as folder:
        out = folder.path if folder is not None else None
        dataset = load_data_or_exit(config)
        config.update(own_data_settings(config, dataset))
        if dataset.source.get("bad_images"):
            say(f"skipped {dataset.source['bad_images']} unreadable images (--skip-bad-images)", err=True)
        try:
            trainer = build_trainer(
                config, dataset, out_dir=out, progress=not quiet, checkpoint_every=checkpoint_every, world=world
            )
        except DeviceError as e:
            fail(str(e), EXIT_USAGE)
        except ValueError as e:
            raise click.UsageError(str(e))
        if config.get("init_from") and not ckpt:
            _init_from(trainer, config["init_from"], say)
        frozen = [name for name, p in trainer.model.named_parameters() if not p.requires_grad]
        if frozen:
            say(f"frozen: {', '.join(frozen)}", err=True)
        if ckpt:
            try:
                trainer.restore(*ckpt, source=resume)
            except (KeyError, ValueError, CheckpointError) as e:
                fail(f"{resume} does not fit this model: {e}", EXIT_CHECKPOINT)
            say(f"resuming {config['model']} at epoch {trainer.epoch + 1}, batch {trainer.batch}", err=True)
        else:
            ranks = f" on {world.size} ranks (batch {config['batch_size']} each)" if world.size > 1 else ""
            say(
                f"training {config['model']} on {config['dataset']} ({len(dataset.train_images)} images) "
                f"for {config['epochs']} epochs{ranks}; run folder {out}",
                err=True,
            )
        try:
            status = trainer.fit(config["epochs"])
        except TrainingDiverged as e:
            fail(str(e), EXIT_DIVERGED)
        except RunFolderError as e:
            fail(str(e), EXIT_USAGE)
        if plots is not False and world.is_main:
            _write_plots(trainer, config, output_names(dataset.classes, trainer.num_classes), out)
    first_step_s = None
    if trainer.first_step_done_at is not None:
        first_step_s = round(trainer.first_step_done_at - process_started_at(), 3)
        if not quiet:
            say(f"first training step done {first_step_s:.2f} s after the process started", err=True)
            warm = trainer.quick_start_report
            if warm and warm["signatures"]:
                say(
                    f"(the JIT cache was cold: {warm['numpy_calls']} kernel calls ran on NumPy while "
                    f"{warm['compiled_in_background']} of {warm['signatures']} kernel signatures compiled "
                    "in the background)",
                    err=True,
                )
            elif warm and warm["numpy_calls"]:
                say(f"({warm['numpy_calls']} kernel calls ran on NumPy while numba started)", err=True)
    if as_json:
        say(
            json.dumps(
                {
                    "status": status,
                    "history": trainer.history,
                    "checkpoint": trainer.checkpoint_path,
                    "first_step_s": first_step_s,
                    "quick_start": trainer.quick_start_report,
                    "run_folder": out,
                    "world_size": world.size,
                }
            )
        )
    if status == "interrupted":
        sys.exit(_SIGNAL_EXIT.get(trainer.stopped_by, EXIT_INTERRUPTED))
    if trainer.history and "val_acc" in trainer.history[-1] and not as_json:
        say(f"test accuracy {100 * trainer.history[-1]['val_acc']:.2f}%  checkpoint {trainer.checkpoint_path}")
