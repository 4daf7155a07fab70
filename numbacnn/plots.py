"""PNG plots of a training run: loss/accuracy curves and the confusion matrix.

matplotlib is optional (``pip install numbacnn[plot]``); :func:`available` says whether it is
there. Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no GUI, no
global state) and written atomically, like checkpoints.
"""

import os

import numpy as np


class PlotError(RuntimeError):
    """matplotlib is missing, or there is nothing to plot."""


def available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width, height):
    if not available():
        raise PlotError("plots need matplotlib: pip install 'numbacnn[plot]' (or pip install matplotlib)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def plot_history(history, path, title=None):
    """Loss and top-1 accuracy per epoch (train, and validation when the history has it).

    ``history``: the list of per-epoch dicts that ``Trainer.fit`` returns (and log.jsonl holds).
    """
    if not history:
        raise PlotError("no epochs in the history: nothing to plot")
    epochs = [row["epoch"] for row in history]
    fig = _figure(10, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, key, label in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "top-1 accuracy (%)")):
        scale = 100 if key == "acc" else 1
        ax.plot(epochs, [scale * row[f"train_{key}"] for row in history], "o-", label="train")
        val = [(row["epoch"], scale * row[f"val_{key}"]) for row in history if f"val_{key}" in row]
        if val:
            ax.plot(*zip(*val), "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(confusion, classes, path, title=None):
    """Confusion matrix (rows: true class, columns: predicted), counts written in each cell."""
    confusion = np.asarray(confusion)
    k = confusion.shape[0]
    if confusion.shape != (k, k) or len(classes) != k:
        raise PlotError(f"confusion matrix of shape {confusion.shape} does not fit {len(classes)} classes")
    fig = _figure(1.0 + 0.6 * k, 0.6 * k)
    ax = fig.subplots()
    rows = confusion.sum(axis=1, keepdims=True)
    image = ax.imshow(confusion / np.maximum(rows, 1), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    for i in range(k):
        for j in range(k):
            share = confusion[i, j] / max(rows[i, 0], 1)
            ax.text(
                j,
                i,
                str(int(confusion[i, j])),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if share > 0.5 else "black",
            )
    ax.set_xticks(range(k), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return _save(fig, path)
