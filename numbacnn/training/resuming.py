"""Continuing a saved run: its configuration checked (``check_checkpoint_config``), what ``--resume``
may change (``resume_config``), the batch rescaled for another number of ranks
(``rescale_for_world``) and the device it runs on here (``usable_device``)."""

from ..data import dataset_key
from ..errors import CheckpointError
from .config import BASE, resolve_config

__all__ = ["CHANGEABLE_ON_RESUME", "check_checkpoint_config", "rescale_for_world", "resume_config", "usable_device"]


def check_checkpoint_config(meta, path):
    """The run configuration of a loaded checkpoint, checked: a registered model, a known data set
    and every setting a run needs (CheckpointError naming what is wrong)."""
    config = dict(meta["config"])
    model = config.get("model")
    if not isinstance(model, str):
        raise CheckpointError(f"{path}: the checkpoint names no model (got {model!r})")
    try:
        defaults = resolve_config(model)
        config["dataset"] = dataset_key(str(config.get("dataset")))
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    missing = sorted(k for k in defaults if k not in config)
    if missing:
        raise CheckpointError(f"{path}: the checkpoint's configuration lacks {', '.join(missing)}")
    return config


# What --resume may change: where the run computes and reads its data, and how long it goes on.
# Anything else (learning rate, batch size, optimizer, seed, ...) would make the resumed run
# differ from an uninterrupted one, so a different value is refused rather than ignored.
CHANGEABLE_ON_RESUME = ("device", "data_dir", "epochs")


def rescale_for_world(config, world_size):
    """``config`` for resuming on ``world_size`` ranks: the global batch (ranks x per-rank batch)
    is what the run is, so the per-rank batch size is rescaled to keep it; ValueError when it
    cannot be divided evenly. Returns (config, note or None)."""
    saved = int(config.get("world_size", 1))
    if saved == world_size:
        return config, None
    global_batch = config["batch_size"] * saved
    if global_batch % world_size:
        raise ValueError(
            f"the checkpoint was trained on {saved} ranks with batch {config['batch_size']} each (global batch "
            f"{global_batch}), which {world_size} ranks cannot share evenly; use a number of ranks that divides it"
        )
    note = (
        f"the checkpoint was trained on {saved} rank(s) with batch {config['batch_size']}; resuming on "
        f"{world_size} with batch {global_batch // world_size} each (the same global batch {global_batch})"
    )
    return dict(config, batch_size=global_batch // world_size, world_size=world_size), note


def resume_config(saved, options):
    """The configuration to resume ``saved`` with: ``options`` (None = not given) may change
    device, data_dir and epochs; a different value of any other setting is a ValueError naming it."""
    config = dict(saved)
    refused = []
    for key, value in options.items():
        if value is None:
            continue
        if key in CHANGEABLE_ON_RESUME:
            config[key] = value
            continue
        if key == "dataset":
            value = dataset_key(value)
        if isinstance(value, tuple):
            value = list(value)
        # A setting older checkpoints lack was off then: BASE says what "off" is.
        had = saved.get(key, BASE.get(key))
        if (key in saved or key in BASE) and had != value:
            refused.append(f"--{key.replace('_', '-')} {value} (the checkpoint has {had})")
    if refused:
        raise ValueError(
            "--resume continues a run exactly, so these cannot change: "
            + "; ".join(refused)
            + ". Only --device, --data-dir and --epochs may; start a new run for other settings."
        )
    return config


def usable_device(saved, requested=None):
    """(device name, note): ``requested`` when given, else the checkpoint's device, or the CPU (with
    a note saying so) when the checkpoint was trained on CUDA and this machine has no GPU."""
    from ..runtime.devices import cuda_available

    if requested:
        return requested, None
    if saved == "cuda" and not cuda_available():
        return "cpu", "the checkpoint was trained on CUDA; no GPU here, so it runs on the CPU"
    return saved, None
