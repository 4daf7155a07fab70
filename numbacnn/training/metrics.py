"""Classification metrics: top-k accuracy, confusion matrix, per-class precision and recall."""

import numpy as np


def topk_correct(logits, labels, k):
    """How many rows of logits (N, K) have their label among the k largest scores."""
    k = min(k, logits.shape[1])
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def confusion_matrix(labels, predictions, num_classes):
    """(K, K) counts: row = true class, column = predicted class."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (labels, predictions), 1)
    return m


def per_class(confusion):
    """(precision, recall) arrays per class; 0 where a class was never predicted / present."""
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    return precision, recall


def format_report(confusion, classes):
    """A text table: per-class precision/recall and the confusion matrix."""
    precision, recall = per_class(confusion)
    width = max(len(c) for c in classes)
    lines = [f"{'class':<{width}}  precision  recall  support"]
    for i, c in enumerate(classes):
        lines.append(f"{c:<{width}}  {precision[i]:9.3f}  {recall[i]:6.3f}  {confusion[i].sum():7d}")
    lines.append("")
    lines.append("confusion matrix (rows: true, columns: predicted)")
    cell = max(5, len(str(confusion.max())) + 1)
    lines.append(" " * (width + 1) + "".join(f"{i:>{cell}}" for i in range(len(classes))))
    for i, c in enumerate(classes):
        lines.append(f"{c:<{width}} " + "".join(f"{v:>{cell}}" for v in confusion[i]))
    return "\n".join(lines)
