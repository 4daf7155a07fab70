"""Checkpoints: one .npz (no pickle) holding model, optimizer and schedule arrays plus JSON metadata,
and the averaged weights of a run trained with --ema (group "average/", beside the raw "model/";
older readers skip a group they do not know).

Writes are atomic (atomic.py): a crash or Ctrl-C never leaves a half-written checkpoint where a
good one was. Reads go through npz.py, which checks everything before it allocates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

from ..errors import CheckpointError
from .atomic import atomic_write
from .npz import read_npz

FORMAT_VERSION = 1
# The per-epoch sums a mid-epoch checkpoint carries (train.Trainer keeps them).
RUNNING_KEYS = ("loss", "correct", "seen", "time")

__all__ = ["CheckpointError", "FORMAT_VERSION", "load_checkpoint", "require_finite", "save_checkpoint"]


def require_finite(path, tensors, what="tensor"):
    """CheckpointError naming the first floating-point tensor of ``tensors`` ({name: array}) that
    holds NaN or infinity: a damaged or foreign file, since numbacnn never writes one."""
    for name, value in tensors.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int(np.size(value) - np.isfinite(value).sum())
            raise CheckpointError(
                f"{path}: {what} '{name}' holds {bad} NaN or infinite value(s); the file is damaged "
                f"or was not written by a finished numbacnn run"
            )


def save_checkpoint(
    path: str | os.PathLike,
    model_state: Mapping[str, np.ndarray],
    optimizer_state: Mapping[str, np.ndarray] | None = None,
    schedule_state: Mapping[str, np.ndarray] | None = None,
    meta: dict | None = None,
    average_state: Mapping[str, np.ndarray] | None = None,
) -> str | os.PathLike:
    """Atomically write a checkpoint to ``path`` (.npz); ``average_state`` the averaged weights, or
    ``meta["average"]`` as load_checkpoint returns it (so that what it read writes back as it was)."""
    meta = dict(meta or {})
    kept_average = meta.pop("average", None)
    if average_state is None:
        average_state = kept_average
    arrays = {f"model/{k}": v for k, v in model_state.items()}
    arrays.update({f"average/{k}": v for k, v in (average_state or {}).items()})
    arrays.update({f"optim/{k}": v for k, v in (optimizer_state or {}).items()})
    arrays.update({f"sched/{k}": v for k, v in (schedule_state or {}).items()})
    meta["format"] = FORMAT_VERSION
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, **arrays), suffix=".npz")


def load_checkpoint(
    path: str | os.PathLike,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """(model_state, optimizer_state, schedule_state, meta) from ``path``, or CheckpointError
    (also for a weight or optimizer state that is NaN or infinite: numbacnn never writes one).
    ``meta["average"]`` holds the averaged weights (a state dict) when the run kept them."""
    arrays = read_npz(path)
    if "meta" not in arrays:
        raise CheckpointError(f"{path} is not a numbacnn checkpoint (no metadata)")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt checkpoint metadata ({e})") from None
    _check_meta(path, meta)
    parts = {"model": {}, "optim": {}, "sched": {}, "average": {}}
    for k, v in arrays.items():
        group, _, name = k.partition("/")
        if group in parts:
            parts[group][name] = v
    require_finite(path, parts["model"])
    require_finite(path, parts["optim"], "optimizer state")
    require_finite(path, parts["average"], "averaged weight")
    if parts["average"]:
        meta["average"] = parts["average"]
    return parts["model"], parts["optim"], parts["sched"], meta


def _check_meta(path, meta):
    """CheckpointError unless ``meta`` has the structure ``Trainer.save`` writes."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is a {type(meta).__name__}, not a JSON object")
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {meta.get('format')} is not supported "
            f"(this numbacnn reads format {FORMAT_VERSION})"
        )
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path}: checkpoint metadata has no run configuration ('config')")
    for key in ("epoch", "batch"):
        value = meta.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(f"{path}: checkpoint '{key}' is {value!r}, not a count >= 0")
    if not isinstance(meta.get("history", []), list) or not isinstance(meta.get("running", {}), dict):
        raise CheckpointError(f"{path}: checkpoint history or running totals are malformed")
    running = meta.get("running")
    if running is not None:
        bad = [
            k for k in RUNNING_KEYS if isinstance(running.get(k), bool) or not isinstance(running.get(k), (int, float))
        ]
        if bad:
            raise CheckpointError(f"{path}: checkpoint running totals lack {', '.join(bad)}")
