"""The options that choose a data set, shared by ``train`` and ``evaluate``."""

import os

import click

from .common import FiniteFloat

DATASET_HELP = (
    "fashion-mnist (default), mnist, cifar10, synthetic, or the path of your own data: an image folder "
    "(PATH/train/<class>/* and PATH/test/<class>/*, or PATH/<class>/* split by --val-split), a .npz "
    "(x_train, y_train, x_test, y_test) or a Kaggle-layout .csv (label, then pixels)."
)


class ClassList(click.ParamType):
    """Class indices as "0-4", "5,7,9" or "0-2,8" (a sorted-as-given list of distinct ints)."""

    name = "list"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        out = []
        try:
            for part in str(value).split(","):
                low, _, high = part.strip().partition("-")
                out += list(range(int(low), int(high) + 1)) if high else [int(low)]
        except ValueError:
            self.fail(f"{value!r} is not a class list such as 0-4 or 5,7,9", param, ctx)
        if not out or len(set(out)) != len(out) or min(out) < 0:
            self.fail(f"{value!r} must name distinct class indices >= 0", param, ctx)
        return out


def _absolute(ctx, param, value):
    return None if value is None else os.path.abspath(value)


def own_data_options(command):
    """--val-split, --test-data, --image-size, --channels, --skip-bad-images (for --dataset PATH)."""
    options = [
        click.option(
            "--val-split",
            type=FiniteFloat(0, low_open=True, high=0.9),
            default=None,
            help="With --dataset PATH and no test split: the fraction of each class held out for testing "
            "(seeded; default 0.1).",
        ),
        click.option(
            "--test-data",
            type=click.Path(dir_okay=False),
            default=None,
            callback=_absolute,
            metavar="FILE",
            help="With --dataset FILE.csv: the CSV of the test images (default: --val-split of the training file).",
        ),
        click.option(
            "--image-size",
            type=click.IntRange(min=8, max=1024),
            default=None,
            metavar="N",
            help="With --dataset PATH: resize images to N x N (default: the model's usual input, 28 or 32).",
        ),
        click.option(
            "--channels",
            type=click.Choice(["1", "3"]),
            default=None,
            callback=lambda ctx, param, value: None if value is None else int(value),
            help="With --dataset PATH: grey (1) or colour (3) (default: 1 when every image is grey, else 3).",
        ),
        click.option(
            "--skip-bad-images",
            is_flag=True,
            default=None,
            help="With an image folder: skip unreadable images and count them (default: stop at the first).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def evaluation_data(config, dataset, checkpoint):
    """The data set ``evaluate`` runs on: the checkpoint's, or ``dataset`` (a name or path) when
    given, preprocessed as the checkpoint's training data was (size, channels, normalisation);
    exit 3 when its classes differ from the checkpoint's."""
    import dataclasses

    from ..data import DATASET_NAMES, dataset_key
    from ..training.config import data_facts
    from .common import EXIT_DATA, EXIT_USAGE, fail, load_data_or_exit

    if dataset is not None:
        try:
            config["dataset"] = dataset_key(dataset)
        except ValueError as e:
            fail(str(e), EXIT_USAGE)
    if config["dataset"] in DATASET_NAMES:
        return load_data_or_exit(config)
    facts = data_facts(config) if "image_shape" in config else None
    if facts is not None:
        config.update(channels=facts.image_shape[0], image_size=facts.image_shape[1])
    data = load_data_or_exit(config)
    if facts is None:
        return data
    if tuple(data.classes) != tuple(facts.classes):
        fail(
            f"{config['dataset']}: its classes ({', '.join(data.classes)}) differ from those the checkpoint "
            f"{checkpoint} was trained on ({', '.join(facts.classes)})",
            EXIT_DATA,
        )
    return dataclasses.replace(data, mean=facts.mean, std=facts.std)
