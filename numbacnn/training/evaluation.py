"""Evaluation: :func:`evaluate` measures a model on a loader (loss, top-1, top-5, confusion),
:func:`class_probabilities` gives a batch's softmax, averaged with its mirror's under test-time
augmentation (``tta="flip"``), and :class:`Uploader` moves host batches to the model's device
without allocating per step."""

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


TTA_CHOICES = ("flip",)


def _check_tta(tta):
    if tta is not None and tta not in TTA_CHOICES:
        raise ValueError(f"tta must be None or one of {', '.join(TTA_CHOICES)}, got {tta!r}")


def softmax_rows(logits):
    """Row softmax of host ``logits`` (N, K), computed in float64 and returned as float32."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def mirrored(x, device):
    """A host copy of the batch ``x`` (N, C, H, W; host or on ``device``) flipped left to right."""
    host = device.to_host(x) if device.owns(x) else np.asarray(x)
    return np.ascontiguousarray(host[..., ::-1])


def class_probabilities(model: Module, x, tta: str | None = None, upload=None) -> np.ndarray:
    """Host softmax (N, K) of ``model`` on the batch ``x`` (N, C, H, W); with ``tta="flip"`` the
    mean of the softmax of ``x`` and of its mirror image. The model's mode is left as it is (call
    ``model.eval()`` first). Mirroring is an invariance only for a model trained with flips."""
    _check_tta(tta)
    upload = upload or Uploader(model.device)
    # softmax_rows returns a new array: the model's reused output buffer may be overwritten next.
    probs = softmax_rows(model.device.to_host(model.forward(upload(x))))
    if tta == "flip":
        probs += softmax_rows(model.device.to_host(model.forward(upload(mirrored(x, model.device)))))
        probs *= 0.5
    return probs


def evaluate(
    model: Module,
    loader: DataLoader,
    loss=None,
    num_classes: int | None = None,
    epoch: int = 0,
    world=None,
    tta: str | None = None,
) -> dict:
    """{loss, top1, top5, confusion} of ``model`` over ``loader`` (eval mode; mode restored).

    With ``tta="flip"`` each image counts by the mean softmax of it and its mirror (see
    :func:`class_probabilities`), and the loss is the cross-entropy of that mean.

    With a ``world`` of several ranks, each evaluates its shard of ``loader`` (a sharded
    DataLoader) and the sums are all-reduced: every rank gets the same figures, over all images.
    """
    _check_tta(tta)
    was_training = model.training
    model.eval()
    device = model.device
    upload = Uploader(device)
    total, correct1, correct5, loss_sum = 0, 0, 0, 0.0
    labels_all, preds_all = [], []
    try:
        for x, y in loader.epoch(epoch):
            if tta is not None:
                host = class_probabilities(model, x, tta, upload)
                if loss is not None:
                    picked = host[np.arange(len(y)), y].astype(np.float64)
                    loss_sum -= float(np.log(np.maximum(picked, np.finfo(np.float32).tiny)).sum())
            else:
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
