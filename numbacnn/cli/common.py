"""What every command shares: exit codes, the one-line ``error:`` exit, option types, and loading
checkpoints, data and images with the documented exit code on failure.

Exit codes: 0 success, 1 unexpected error, 2 bad usage (also: a run folder taken, locked or
unwritable), 3 data or image missing or corrupt, 4 checkpoint missing or corrupt, 5 training
diverged (non-finite loss or weights; no checkpoint written), 130 interrupted by Ctrl-C and 143 by
SIGTERM (a checkpoint was saved when training had started).
"""

import math
import sys

import click
import numpy as np

EXIT_USAGE, EXIT_DATA, EXIT_CHECKPOINT, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 3, 4, 5, 130, 143


_progress_line_open = False  # a progress line on stderr waits for its end (no newline yet)


def fail(message, code):
    from ..distributed import launched_rank

    global _progress_line_open
    if launched_rank() == 0:  # under mpiexec every rank fails alike; one says why
        if _progress_line_open:  # the error goes on a line of its own
            click.echo("", err=True)
            _progress_line_open = False
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _data_progress(what, done, total):
    """Progress of downloading or decoding a data set, on one rewritten line of stderr."""
    global _progress_line_open
    if total:
        click.echo(f"\r{what}: {100 * done // total}%", err=True, nl=done >= total)
        _progress_line_open = done < total


def load_data_or_exit(config):
    from ..data import DataError
    from ..training.config import load_data

    try:
        return load_data(config, progress=_data_progress)
    except DataError as e:
        fail(str(e), EXIT_DATA)
    except ValueError as e:  # options the data set cannot honour (e.g. an absurd --synthetic-size)
        fail(str(e), EXIT_USAGE)


def load_checkpoint_or_exit(path):
    """(model_state, optim_state, sched_state, meta) with meta["config"] checked, or exit 4."""
    from ..formats.checkpoint import CheckpointError, load_checkpoint
    from ..training.resuming import check_checkpoint_config

    try:
        model_state, optim_state, sched_state, meta = load_checkpoint(path)
        meta = dict(meta, config=check_checkpoint_config(meta, path))
    except CheckpointError as e:
        fail(str(e), EXIT_CHECKPOINT)
    return model_state, optim_state, sched_state, meta


def weights_of(model_state, meta):
    """The weights a checkpoint's model runs with: the averaged ones when the run kept them (--ema),
    said on stderr, else the raw ones."""
    average = meta.get("average")
    if average is None:
        return model_state
    click.echo(f"note: using the averaged weights (--ema {meta['config'].get('ema')})", err=True)
    return average


def checkpoint_model(checkpoint):
    """(model in eval mode on the CPU with the checkpoint's weights, its data facts, its config),
    or exit 4 naming what is wrong: for the commands that need no data set."""
    from ..training.config import build_model, data_facts

    model_state, _, _, meta = load_checkpoint_or_exit(checkpoint)
    config = dict(meta["config"], device="cpu")
    try:
        facts = data_facts(config)
    except (KeyError, TypeError) as e:
        fail(f"{checkpoint}: the checkpoint does not record its data set's {e}", EXIT_CHECKPOINT)
    try:
        model = build_model(config, facts)
        model.load_state_dict(weights_of(model_state, meta))
    except (KeyError, ValueError, TypeError) as e:
        fail(f"{checkpoint}: {e}", EXIT_CHECKPOINT)
    return model.eval(), facts, config


def read_image_for(path, facts, with_pillow):
    """The image at ``path`` as float32 (C, H, W) on 0..255 for a model trained on ``facts``
    (image_shape): through Pillow when ``with_pillow`` (any format, converted and resized as
    training on an image folder does), else PNG/PGM/PPM of the exact size; .npy as stored."""
    from ..data.decode import decode_image
    from ..data.images import read_image
    from ..errors import DataError, ImageError

    channels, size = facts.image_shape[0], facts.image_shape[1]
    if str(path).lower().endswith(".npy") or not with_pillow:
        try:
            return read_image(path, facts.image_shape)
        except ImageError as e:
            hint = "" if with_pillow else " (pip install 'numbacnn[images]' reads any image format and resizes)"
            fail(f"{e}{hint}", EXIT_DATA)
    try:
        return decode_image(path, size, channels).astype(np.float32)
    except DataError as e:
        fail(str(e), EXIT_DATA)


def _pillow_installed():
    import importlib.util

    return importlib.util.find_spec("PIL") is not None


def read_batch(paths, facts):
    """The images at ``paths`` as one normalised float32 batch (N, C, H, W) for the checkpoint's
    data (``facts``: image_shape, mean, std), or exit 3 naming the unreadable file."""
    with_pillow = _pillow_installed()
    batch = np.stack([read_image_for(p, facts, with_pillow) for p in paths])
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


class FloatRange(click.ParamType):
    """ "LOW,HIGH": two finite floats with low <= LOW <= HIGH <= high (e.g. --erasing-area 0.02,0.4)."""

    name = "low,high"

    def __init__(self, low, high, low_open=False):
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value, param, ctx):
        if isinstance(value, (tuple, list)):
            return tuple(value)
        try:
            lo, hi = (float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not two numbers LOW,HIGH (e.g. 0.02,0.4)", param, ctx)
        in_range = (lo > self.low if self.low_open else lo >= self.low) and hi <= self.high
        if not (math.isfinite(lo) and math.isfinite(hi) and in_range and lo <= hi):
            bound = f"{'>' if self.low_open else '>='} {self.low}"
            self.fail(f"{value!r}: need LOW <= HIGH, LOW {bound}, HIGH <= {self.high}", param, ctx)
        return (lo, hi)
