"""``numbacnn attack`` (adversarial examples against a trained model) and ``numbacnn visualize``
(filters, feature maps, saliency). The library computes the arrays; these commands draw them."""

import json

import click
import numpy as np

from .common import EXIT_USAGE, FiniteFloat, checkpoint_model, fail, load_data_or_exit, output_names, read_batch
from .main import main

GRID_SAMPLES = 8  # images drawn in the attack's PNG grid
MAX_CHANNELS = 16  # channels (or filters) drawn per layer


def _require_plots(path):
    from . import plots

    if path and not plots.available():
        fail("drawing needs matplotlib: pip install 'numbacnn[plot]'", EXIT_USAGE)


def _to_pixels(batch, facts):
    """Normalised (N, C, H, W) -> pixel units in [0, 1]."""
    mean = np.asarray(facts.mean, np.float64).reshape(1, -1, 1, 1)
    std = np.asarray(facts.std, np.float64).reshape(1, -1, 1, 1)
    return np.asarray(batch, np.float64) * std + mean


def _shown(batch):
    """(N, C, H, W) -> one displayable image per sample: (H, W) for grey, (3, H, W) for colour."""
    return batch[:, 0] if batch.shape[1] == 1 else batch


ATTACK_EPILOG = """\b
Examples:
  numbacnn attack runs/lenet5/checkpoint.npz --eps 0.1
  numbacnn attack CKPT --method pgd --eps 0.05 --steps 20 --json
  numbacnn attack CKPT --plot adversarial.png      # originals, perturbations, adversarial images

eps is in pixel units (a fraction of the 0-255 range); adversarial images stay valid pixels.
"""


@main.command(epilog=ATTACK_EPILOG)
@click.argument("checkpoint", type=click.Path())
@click.option("--method", type=click.Choice(["fgsm", "pgd"]), default="fgsm", show_default=True)
@click.option("--eps", type=FiniteFloat(0, high=1), default=0.1, show_default=True, help="In pixel units (0-1).")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="PGD steps.")
@click.option("--step-size", type=FiniteFloat(0, low_open=True), default=None, help="PGD step (default 2.5 eps/steps).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Attack only the first N test images.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="PNG grid (matplotlib).")
def attack(checkpoint, method, eps, steps, step_size, limit, data_dir, as_json, plot_path):
    """Accuracy of CHECKPOINT's model on the test set before and after an FGSM or PGD attack."""
    from .. import adversarial
    from ..training.config import evaluation_loader

    _require_plots(plot_path)
    model, facts, config = checkpoint_model(checkpoint)
    dataset = load_data_or_exit(dict(config, data_dir=data_dir or config.get("data_dir")))
    eps_norm, bounds = adversarial.pixel_units(eps, facts.mean, facts.std)
    step_norm = None if step_size is None else adversarial.pixel_units(step_size, facts.mean, facts.std)[0]
    total = clean_right = adv_right = 0
    linf, l2, shown = [], [], None
    for x, y in evaluation_loader(config, dataset).epoch(0):
        if limit is not None:
            x, y = x[: limit - total], y[: limit - total]
        if not len(y):
            break
        if method == "fgsm":
            adv = adversarial.fgsm(model, x, y, eps_norm, bounds)
        else:
            adv = adversarial.pgd(model, x, y, eps_norm, steps, step_norm, bounds)
        clean_pred, adv_pred = model.forward(x).argmax(1), model.forward(adv).argmax(1)
        delta = _to_pixels(adv, facts) - _to_pixels(x, facts)
        linf += list(np.abs(delta).reshape(len(y), -1).max(axis=1))
        l2 += list(np.sqrt((delta**2).reshape(len(y), -1).sum(axis=1)))
        clean_right += int((clean_pred == y).sum())
        adv_right += int((adv_pred == y).sum())
        if shown is None:
            shown = (x[:GRID_SAMPLES].copy(), adv[:GRID_SAMPLES], clean_pred[:GRID_SAMPLES], adv_pred[:GRID_SAMPLES])
        total += len(y)
    result = {
        "method": method,
        "eps": eps,
        "steps": steps if method == "pgd" else None,
        "samples": total,
        "clean_accuracy": clean_right / total,
        "adversarial_accuracy": adv_right / total,
        "mean_linf": float(np.mean(linf)),
        "mean_l2": float(np.mean(l2)),
    }
    if plot_path:
        result["plot"] = _draw_attack(shown, facts, result, plot_path, config["model"])
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{method} eps {eps:g} (pixel units) on {total} test images: clean accuracy "
        f"{100 * result['clean_accuracy']:.2f}%, adversarial accuracy {100 * result['adversarial_accuracy']:.2f}%; "
        f"mean perturbation L-inf {result['mean_linf']:.4f}, L2 {result['mean_l2']:.3f}"
        + (f"; grid written to {plot_path}" if plot_path else "")
    )


def _draw_attack(shown, facts, result, path, model_name):
    from . import plots

    x, adv, clean_pred, adv_pred = shown
    names = output_names(facts.classes, int(max(clean_pred.max(), adv_pred.max())) + 1)
    original, attacked = _to_pixels(x, facts), _to_pixels(adv, facts)
    delta = attacked - original
    # Pixels as they are; the perturbation centred on grey and stretched to the full range.
    rows = [
        ("original", _shown(original)),
        ("perturbation", _shown(0.5 + 0.5 * delta / max(float(np.abs(delta).max()), 1e-12))),
        ("adversarial", _shown(attacked)),
    ]
    captions = [[names[k] for k in clean_pred], [""] * len(x), [names[k] for k in adv_pred]]
    title = (
        f"{model_name}: {result['method']} eps {result['eps']:g}, accuracy {100 * result['clean_accuracy']:.1f}% -> "
        f"{100 * result['adversarial_accuracy']:.1f}%"
    )
    return plots.plot_image_grid(rows, path, title, scale=None, captions=captions)


VISUALIZE_EPILOG = """\b
Examples:
  numbacnn visualize runs/lenet5/checkpoint.npz --filters
  numbacnn visualize CKPT --filters --layer 3 --out conv2.png
  numbacnn visualize CKPT shoe.png --feature-maps --layer 0 --layer 3
  numbacnn visualize CKPT shoe.png --saliency [--target 7]

Layer names are the state dict's module paths ("0", "layer1.0.conv1"); numbacnn summary MODEL lists them.
"""


@main.command(epilog=VISUALIZE_EPILOG)
@click.argument("checkpoint", type=click.Path())
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--filters", "what", flag_value="filters", help="The filters of a convolution (default: the first).")
@click.option("--feature-maps", "what", flag_value="feature-maps", help="The activations of layers for IMAGES.")
@click.option("--saliency", "what", flag_value="saliency", help="Input-gradient saliency of IMAGES' predicted class.")
@click.option("--layer", "layers", multiple=True, metavar="NAME", help="Layer(s) to show (repeatable).")
@click.option("--target", type=click.IntRange(min=0), default=None, help="Saliency of this class (default: predicted).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="PNG to write (default WHAT.png).")
def visualize(checkpoint, images, what, layers, target, out):
    """Draw what CHECKPOINT's network has learned: filters, feature maps or saliency maps."""
    from .. import inspect

    if what is None:
        raise click.UsageError("choose one of --filters, --feature-maps, --saliency")
    if what != "filters" and not images:
        raise click.UsageError(f"--{what} needs at least one IMAGE")
    out = out or f"{what.replace('-', '_')}.png"
    _require_plots(out)
    model, facts, config = checkpoint_model(checkpoint)
    try:
        if what == "filters":
            path = _draw_filters(model, layers, out, config["model"])
        elif what == "feature-maps":
            path = _draw_feature_maps(inspect.feature_maps(model, read_batch(images, facts), layers or None), out)
        else:
            batch = read_batch(images, facts)
            maps, chosen = inspect.saliency(model, batch, target)
            names = output_names(facts.classes, int(chosen.max()) + 1)
            path = _draw_saliency(batch, maps, [names[k] for k in chosen], facts, out)
    except ValueError as e:
        fail(str(e), EXIT_USAGE)
    click.echo(f"wrote {path}")


def _draw_filters(model, layers, out, model_name):
    """First-layer filters as images (one row); deeper ones as one row per filter, one column per
    input channel."""
    from .. import inspect
    from ..layers import Conv2d
    from . import plots

    name = layers[0] if layers else inspect.layer_names(model, Conv2d)[0]
    weights = inspect.filters(model, name)[:MAX_CHANNELS]
    if weights.shape[1] in (1, 3):
        rows = [(name, weights[:, 0] if weights.shape[1] == 1 else weights)]
    else:
        rows = [(f"filter {k}", w[:MAX_CHANNELS]) for k, w in enumerate(weights)]
    return plots.plot_image_grid(rows, out, f"{model_name}: filters of layer {name}")


def _draw_feature_maps(maps, out):
    from . import plots

    rows = []
    for name, activations in maps.items():
        if activations.ndim != 4:
            raise ValueError(f"layer {name} outputs shape {activations.shape[1:]}, not feature maps (C, H, W)")
        for i, sample in enumerate(activations):
            rows.append((f"{name}" + (f" #{i}" if len(activations) > 1 else ""), sample[:MAX_CHANNELS]))
    return plots.plot_image_grid(rows, out, "feature maps (each channel scaled to its own range)")


def _draw_saliency(batch, maps, labels, facts, out):
    from . import plots

    return plots.plot_saliency(_to_pixels(batch, facts), maps, out, captions=labels, title="saliency")
