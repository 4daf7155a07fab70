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


def _normalised(image):
    """An image scaled to [0, 1] for display (a constant image becomes mid-grey)."""
    image = np.asarray(image, np.float64)
    low, high = image.min(), image.max()
    return np.full_like(image, 0.5) if high - low < 1e-12 else (image - low) / (high - low)


def _as_displayable(image, scale):
    """(H, W) or (3, H, W) -> an array imshow takes; ``scale`` "auto" min-max normalises each
    image, None keeps values (pixels in [0, 1])."""
    image = np.asarray(image, np.float64)
    if scale == "auto":
        image = _normalised(image)
    image = np.clip(image, 0.0, 1.0)
    return image.transpose(1, 2, 0) if image.ndim == 3 else image


def plot_image_grid(rows, path, title=None, scale="auto", captions=None, cmap="gray"):
    """A grid of small images: ``rows`` is a list of (label, images) with images (n, H, W) or
    (n, 3, H, W); ``captions`` (same layout, strings) go under the images. ``scale`` "auto" shows
    each image min-max normalised (filters, activations), None as pixels in [0, 1]."""
    if not rows or not any(len(images) for _, images in rows):
        raise PlotError("no images to draw")
    columns = max(len(images) for _, images in rows)
    fig = _figure(1.2 * columns + 1.0, 1.3 * len(rows))
    axes = np.asarray(fig.subplots(len(rows), columns, squeeze=False))
    for r, (label, images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.set_axis_off()
                continue
            ax.imshow(_as_displayable(images[c], scale), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            if captions is not None and captions[r][c]:
                ax.set_xlabel(captions[r][c], fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_saliency(images, maps, path, captions=None, title=None):
    """Each image (n, C, H, W, pixels in [0, 1]) above its saliency map (n, H, W), and the map laid
    over the image."""
    if len(images) != len(maps) or not len(images):
        raise PlotError(f"{len(images)} images but {len(maps)} saliency maps")
    fig = _figure(2.2 * len(images) + 0.5, 6.6)
    axes = np.asarray(fig.subplots(3, len(images), squeeze=False))
    for i, (image, heat) in enumerate(zip(images, maps)):
        picture = _as_displayable(image[0] if len(image) == 1 else image, None)
        heat = _normalised(heat)
        for row, ax in enumerate(axes[:, i]):
            ax.set_xticks([])
            ax.set_yticks([])
            if row != 1:
                ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
            if row >= 1:
                ax.imshow(heat, cmap="inferno", vmin=0, vmax=1, alpha=1.0 if row == 1 else 0.55)
        if captions is not None:
            axes[0, i].set_title(captions[i], fontsize=8)
    for ax, label in zip(axes[:, 0], ("image", "saliency", "overlay")):
        ax.set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
