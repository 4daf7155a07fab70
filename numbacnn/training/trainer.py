"""Training: :class:`Trainer` runs epochs with progress, validation, schedules, logs and
checkpoints (evaluation.py measures a model; session.py is what fit() sets up and takes down).

Exact resume: a checkpoint holds the model (with its non-persistent buffers: dropout's call
counters), optimizer state, schedule and the position in the data (epoch and batch; the data order
derives from the seed and the epoch), so an interrupted run resumed from it ends with the same
weights as an uninterrupted one.
Ctrl-C finishes the current step, saves a checkpoint and stops; a second Ctrl-C aborts at once.
A non-finite loss stops training before the bad step is saved: the last checkpoint stays good.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CheckpointError, TrainingDiverged
from ..formats.checkpoint import save_checkpoint
from .averaging import WeightAverage
from .evaluation import Uploader, evaluate
from .progress import Progress, bar
from .run_log import append_row, write_log
from .session import FitSession

if TYPE_CHECKING:
    from ..data import DataLoader
    from ..layers import Module
    from ..losses import CrossEntropyLoss
    from ..optim import LRSchedule, Optimizer


class Trainer:
    """Owns a training run: model, loss, optimizer, schedule, loaders, position and history."""

    def __init__(
        self,
        model: Module,
        loss: CrossEntropyLoss,
        optimizer: Optimizer,
        train_loader: DataLoader,
        val_loader: DataLoader | None = None,
        schedule: LRSchedule | None = None,
        out_dir: str | None = None,
        config: dict | None = None,
        progress: bool = True,
        num_classes: int | None = None,
        checkpoint_every: int | None = None,
        world=None,
        adversary=None,
        quick_start: bool = True,
        ema: float | None = None,
    ):
        from ..distributed import World

        self.model, self.loss, self.optimizer, self.schedule = model, loss, optimizer, schedule
        self.train_loader, self.val_loader = train_loader, val_loader
        # Data-parallel training (distributed.py): every rank runs a Trainer; rank 0 alone logs
        # and writes checkpoints. The loaders must be sharded for this world.
        self.world = world or World()
        if self.world.size > 1 and train_loader.world_size != self.world.size:
            raise ValueError(
                f"Trainer: a world of {self.world.size} ranks needs a train loader sharded for it "
                f"(DataLoader(..., rank={self.world.rank}, world_size={self.world.size}))"
            )
        self.out_dir = out_dir if self.world.is_main else None
        # Adversarial training: a callable (model, x, y) -> x that replaces part of each batch by
        # adversarial examples before the step (adversarial.Adversary).
        self.adversary = adversary
        # Weight averaging (averaging.py): evaluation and checkpoints use the average too.
        self.average = WeightAverage(model, optimizer, ema) if ema else None
        self.config = dict(config or {})
        self.progress = Progress(progress and self.world.is_main)
        self.num_classes = num_classes
        self.epoch, self.batch = 0, 0  # position of the next step
        self.history = []
        self.last_confusion = None  # of the latest validation (rows: true class), for reports
        self.first_step_done_at = None  # time.time() when this process finished its first step
        # On a cold JIT cache, start on the NumPy kernels while the compiled ones are built in the
        # background (runtime/quick_start.py); False compiles in this process first (bitwise the run a
        # warm cache gives).
        self.quick_start = quick_start
        self.quick_start_report = None  # what quick start did in the latest fit(), when it ran
        if checkpoint_every is not None and checkpoint_every < 1:
            raise ValueError(f"Trainer: checkpoint_every must be >= 1 steps, got {checkpoint_every!r}")
        self.checkpoint_every = checkpoint_every
        # The newest checkpoint known to hold finite weights (written by this run, or resumed from).
        self.last_good_checkpoint = None
        self.stopped_by = None  # "SIGINT" or "SIGTERM" when a signal stopped fit()
        # Share the cores with other numbacnn trainings running at the same time (core_share.py).
        self.share_cores = True
        self._running = _fresh_running()
        self._stop_requested = False  # a signal reached this process
        self._stop_agreed = False  # some rank got one: every rank stops after this step
        self._upload = Uploader(model.device)
        # Nothing uses the gradient w.r.t. the input images: skip computing it.
        model.first_layer().input_grad = False

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self):
        return os.path.join(self.out_dir, "checkpoint.npz") if self.out_dir else None

    def save(self, path: str | None = None) -> str | None:
        """Write a checkpoint (atomically) and return its path; TrainingDiverged instead when a
        parameter or buffer is not finite: a non-finite checkpoint is never written."""
        path = path or self.checkpoint_path
        if path is None and self.world.size == 1:
            return None
        # Every rank checks (the weights are the same everywhere, so all stop together); rank 0
        # writes, with its BatchNorm statistics, which every rank then takes.
        self._check_finite()
        self.world.broadcast_buffers(self.model)
        if path is None or not self.world.is_main:
            return None
        meta = {
            "config": self.config,
            "epoch": self.epoch,
            "batch": self.batch,
            "history": self.history,
            "running": self._running,
        }
        sched = self.schedule.state_dict() if self.schedule else None
        average = None
        if self.average is not None:
            average, meta["average_updates"] = self.average.state_dict(), self.average.updates
        state = self.model.state_dict(keep_nonpersistent=True)
        save_checkpoint(path, state, self.optimizer.state_dict(), sched, meta, average_state=average)
        self.last_good_checkpoint = path
        return path

    def _check_finite(self):
        """TrainingDiverged naming where, if the weights, optimizer state or buffers hold NaN/inf."""
        bad = [] if self.optimizer.all_finite() else ["parameters or optimizer state"]
        bad += [
            name
            for name, b in self.model.named_buffers()
            if np.asarray(self.model.device.to_host(b)).dtype.kind == "f"
            and not np.isfinite(self.model.device.to_host(b)).all()
        ]
        if bad:
            raise TrainingDiverged(
                f"{', '.join(bad)} became NaN or infinite by epoch {self.epoch + 1}, batch {self.batch}; "
                f"training stopped without writing a checkpoint{self._last_good()}. Try a lower learning rate."
            )

    def _last_good(self):
        if self.last_good_checkpoint:
            return f" (last good checkpoint: {self.last_good_checkpoint})"
        return " (no good checkpoint was written)"

    def restore(self, model_state, optim_state, sched_state, meta, source=None):
        """Continue from a checkpoint's contents (see ``checkpoint.load_checkpoint``); ``source``
        is its path. A position past the end of an epoch is a CheckpointError."""
        epoch, batch = int(meta["epoch"]), int(meta["batch"])
        if batch > len(self.train_loader):
            raise CheckpointError(
                f"{source or 'checkpoint'}: batch {batch} is past the end of an epoch "
                f"({len(self.train_loader)} batches with this data and batch size)"
            )
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(optim_state)
        if self.average is not None and "average" in meta:
            self.average.load_state_dict(meta["average"], meta.get("average_updates", 0))
        if self.schedule and sched_state:
            self.schedule.load_state_dict(sched_state)
        self.epoch, self.batch = epoch, batch
        self.history = list(meta.get("history", []))
        self._running = dict(meta.get("running", self._running))
        self.last_good_checkpoint = source
        if self.out_dir:
            # Epoch rows written after the checkpoint (a kill between the two) are dropped.
            write_log(os.path.join(self.out_dir, "log.jsonl"), self.history)

    # ------------------------------------------------------------------ the loop
    @property
    def resumed(self):
        """Whether the next step is not the run's first (a resume, or a second fit())."""
        return (self.epoch, self.batch) != (0, 0)

    def on_signal(self, signum, frame):
        """The SIGINT/SIGTERM handler fit() installs: the step in flight finishes, then fit()
        saves a checkpoint and returns "interrupted"."""
        self._stop_requested = True
        self.stopped_by = signal.Signals(signum).name
        # A second Ctrl-C (or SIGTERM) aborts at once.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)

    def fit(self, epochs: int, max_steps: int | None = None) -> str:
        """Train until ``epochs`` epochs are done (counting those already done before a resume).

        Returns "finished", or "interrupted" after Ctrl-C or SIGTERM (``stopped_by`` says which)
        or ``max_steps`` steps, with a checkpoint saved. Raises TrainingDiverged on a non-finite
        loss, validation loss or parameter (no checkpoint is written then; the last good one is
        named), and RunFolderError before the first step when the run folder is not writable.
        """
        session = FitSession(self)
        try:
            with session:
                return self._fit(epochs, max_steps, session)
        finally:
            self.quick_start_report = session.quick_start_report

    def _fit(self, epochs, max_steps, session):
        model = self.model
        model.train()
        steps = 0
        while self.epoch < epochs:
            n_batches = len(self.train_loader)
            t0 = time.perf_counter() - self._running["time"]
            for x, y in self.train_loader.epoch(self.epoch, self.batch):
                if session.share is not None:
                    session.share.rebalance(force=steps == 0)
                self._step(self._upload(x), y)
                if self.first_step_done_at is None:
                    self.first_step_done_at = time.time()
                if session.routing is not None:
                    self._advance_quick_start(session, x, first=steps == 0)
                self.batch += 1
                steps += 1
                if self.checkpoint_every and (self.epoch * n_batches + self.batch) % self.checkpoint_every == 0:
                    self.save()
                r = self._running
                r["time"] = time.perf_counter() - t0
                self.progress.update(
                    f"epoch {self.epoch + 1}/{epochs} {bar(self.batch, n_batches)} {self.batch}/{n_batches} "
                    f"loss {r['loss'] / r['seen']:.4f} acc {100 * r['correct'] / r['seen']:.2f}% "
                    f"{r['seen'] / max(r['time'], 1e-9):.0f} img/s lr {self.optimizer.lr:.3g}"
                )
                stop = self._stop_agreed or (self.world.size == 1 and self._stop_requested)
                if stop or (max_steps is not None and steps >= max_steps):
                    self.save()
                    self.progress.update(
                        f"stopped at epoch {self.epoch + 1}, batch {self.batch}; "
                        f"checkpoint saved to {self.checkpoint_path}",
                        final=True,
                    )
                    return "interrupted"
            self._end_epoch(epochs)
        return "finished"

    def _advance_quick_start(self, session, x, first):
        """After a step while quick start routes the kernels: after the first, an eval-mode
        forward of the same batch meets the evaluation's kernels early, so they compile in the
        background too; then quick start steps aside as soon as everything met is compiled."""
        if first and session.routing.signatures:  # (a warm cache needs no early look)
            self.model.eval()
            try:
                self.model.forward(x)
            finally:
                self.model.train()
        if session.routing.settle():
            session.end_routing()

    def _step(self, x, y):
        if self.adversary is not None:
            x = self.adversary(self.model, x, y)
        self.optimizer.zero_grad()
        logits = self.model.forward(x)
        loss = self.loss.forward(logits, y)
        correct = int((self.model.device.to_host(self.loss.probabilities).argmax(1) == y).sum())
        # One process: these are the local figures. Several: their sums over the ranks, so every
        # rank sees the global loss and the same stop decision.
        loss_sum, correct, seen, stops = self.world.sum_values(loss * len(y), correct, len(y), self._stop_requested)
        self._stop_agreed = stops > 0
        loss = loss_sum / seen
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"loss became {loss} at epoch {self.epoch + 1}, batch {self.batch + 1}; "
                f"training stopped{self._last_good()}. Try a lower learning rate."
            )
        # The gradient of the global mean loss: this rank's images weigh len(y) / seen of it.
        self.model.backward(self.loss.backward(scale=len(y) / seen))
        self.world.allreduce_sum(self.optimizer.storage.grad, self.model.device)
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        if self.schedule:
            self.schedule.step()
        r = self._running
        r["loss"] += float(loss_sum)
        r["correct"] += int(correct)
        r["seen"] += int(seen)

    def _end_epoch(self, epochs):
        r = self._running
        row = {
            "epoch": self.epoch + 1,
            "train_loss": r["loss"] / r["seen"],
            "train_acc": r["correct"] / r["seen"],
            "lr": self.optimizer.lr,
            "time_s": r["time"],
            "images_per_s": r["seen"] / max(r["time"], 1e-9),
        }
        if self.val_loader is not None:
            self.world.broadcast_buffers(self.model)  # rank 0's BatchNorm statistics everywhere
            with self.average.in_use() if self.average is not None else contextlib.nullcontext():
                if self.average is not None:
                    self.world.broadcast_buffers(self.model)  # and rank 0's averaged ones
                ev = evaluate(self.model, self.val_loader, self.loss, self.num_classes, world=self.world)
            row.update(val_loss=ev["loss"], val_acc=ev["top1"], val_top5=ev["top5"])
            self.last_confusion = ev["confusion"]
            if not math.isfinite(ev["loss"]):
                raise TrainingDiverged(
                    f"validation loss became {ev['loss']} after epoch {self.epoch + 1}; training stopped "
                    f"without writing a checkpoint{self._last_good()}. Try a lower learning rate."
                )
        self.history.append(row)
        text = (
            f"epoch {row['epoch']}/{epochs} loss {row['train_loss']:.4f} acc {100 * row['train_acc']:.2f}% "
            f"{row['images_per_s']:.0f} img/s {row['time_s']:.1f}s"
        )
        if "val_acc" in row:
            text += (
                f" | val loss {row['val_loss']:.4f} acc {100 * row['val_acc']:.2f}% top5 {100 * row['val_top5']:.2f}%"
            )
        self.progress.update(text, final=True)
        self.epoch, self.batch = self.epoch + 1, 0
        self._running = _fresh_running()
        if self.out_dir or self.world.size > 1:
            # Checkpoint first: a kill between the two leaves a log that a resume rewrites from
            # the checkpoint's history, never a row the checkpoint does not have. With several
            # ranks every one takes part (the finite check and rank 0's statistics are
            # collective); only rank 0 writes.
            self.save()
        if self.out_dir:
            append_row(os.path.join(self.out_dir, "log.jsonl"), row)


def _fresh_running():
    """Sums over the current epoch's steps (kept in checkpoints so a resumed epoch reports right)."""
    return {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}
