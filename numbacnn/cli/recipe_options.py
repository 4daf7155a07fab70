"""The options of ``train`` that make a recipe: Nesterov momentum, random erasing, weight
averaging and the named presets of ``training/recipes.py``."""

import click

from ..training.recipes import RECIPES
from .common import FiniteFloat, FloatRange

RECIPE_OPTIONS = [
    click.option(
        "--nesterov/--no-nesterov", default=None, help="Nesterov momentum with --optimizer sgd (default off)."
    ),
    click.option(
        "--random-erasing",
        type=FiniteFloat(0, high=1),
        default=None,
        metavar="P",
        help="Random erasing: with probability P per image, a rectangle of random pixels (Zhong et al. 2020; "
        "0.5 is their setting; default off).",
    ),
    click.option(
        "--erasing-area",
        type=FloatRange(0, 1, low_open=True),
        default=None,
        help="With --random-erasing: the rectangle's share of the image, drawn uniformly (default 0.02,0.4).",
    ),
    click.option(
        "--erasing-ratio",
        type=FloatRange(0, 100, low_open=True),
        default=None,
        help="With --random-erasing: its aspect ratio h/w, drawn log-uniformly (default 0.3,3.3).",
    ),
    click.option(
        "--ema",
        type=FiniteFloat(0, high=0.999999),
        default=None,
        metavar="DECAY",
        help="Keep an exponential moving average of the weights and BatchNorm statistics (e.g. 0.999): "
        "validation, evaluate, predict and export use it; checkpoints keep it beside the raw weights "
        "(default off; --recipe long sets 0.999, which --ema 0 turns off).",
    ),
    click.option(
        "--recipe",
        type=click.Choice(sorted(RECIPES)),
        default=None,
        help="A named set of defaults (options given beside it win): "
        + "; ".join(f"{name}: {text}" for name, (text, _) in sorted(RECIPES.items()))
        + ".",
    ),
]


def recipe_options(command):
    """Decorate ``command`` with the recipe options (in the order of RECIPE_OPTIONS in --help)."""
    for option in reversed(RECIPE_OPTIONS):
        command = option(command)
    return command
