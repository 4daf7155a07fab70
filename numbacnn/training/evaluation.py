"""Evaluation: :func:`evaluate` measures a model on a loader (loss, top-1, top-5, confusion),
and :class:`Uploader` moves host batches to the model's device without allocating per step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import metrics

if TYPE_CHECKING:
    from ..data import DataLoader
    from ..layers import Module


class Uploader:
    """Moves host batches to ``device``, into one reused buffer per batch shape (no allocation
    per step on a GPU; on the CPU the batch is used in place)."""

    def __init__(self, device):
        self.device, self.buffers = device, {}

    def __call__(self, x):
        if self.device.owns(x):
            return x
        key = (tuple(x.shape), x.dtype.str)
        if key not in self.buffers:
            self.buffers[key] = self.device.empty(x.shape, x.dtype)
        return self.device.asarray(x, out=self.buffers[key])


def evaluate(
    model: Module, loader: DataLoader, loss=None, num_classes: int | None = None, epoch: int = 0, world=None
) -> dict:
    """{loss, top1, top5, confusion} of ``model`` over ``loader`` (eval mode; mode restored).

    With a ``world`` of several ranks, each evaluates its shard of ``loader`` (a sharded
    DataLoader) and the sums are all-reduced: every rank gets the same figures, over all images.
    """
    was_training = model.training
    model.eval()
    device = model.device
    upload = Uploader(device)
    total, correct1, correct5, loss_sum = 0, 0, 0, 0.0
    labels_all, preds_all = [], []
    try:
        for x, y in loader.epoch(epoch):
            logits = model.forward(upload(x))
            if loss is not None:
                loss_sum += loss.forward(logits, y) * len(y)
            host = device.to_host(logits)
            num_classes = num_classes or host.shape[1]
            correct1 += metrics.topk_correct(host, y, 1)
            correct5 += metrics.topk_correct(host, y, 5)
            labels_all.append(y.copy())
            preds_all.append(host.argmax(axis=1))
            total += len(y)
    finally:
        model.train(was_training)
    labels_all, preds_all = np.concatenate(labels_all), np.concatenate(preds_all)
    confusion = metrics.confusion_matrix(labels_all, preds_all, num_classes)
    if world is not None and world.size > 1:
        loss_sum, correct1, correct5, total = world.sum_values(loss_sum, correct1, correct5, total)
        confusion = world.allreduce_sum(np.ascontiguousarray(confusion, np.int64))
        correct1, correct5, total = int(correct1), int(correct5), int(total)
    return {
        "loss": loss_sum / total if loss is not None else None,
        "top1": correct1 / total,
        "top5": correct5 / total,
        "samples": total,
        "confusion": confusion,
    }
