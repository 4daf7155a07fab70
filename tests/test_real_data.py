"""The real Fashion-MNIST, as Debian's dataset-fashion-mnist package installs it (.ci/run installs
it; elsewhere: apt-get install dataset-fashion-mnist). The rest of the suite uses IDX files the
tests write, so these are the tests that read the files users train on."""

import os

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.data import DataLoader, load_dataset
from numbacnn.training.trainer import Trainer

DEBIAN = "/usr/share/datasets/fashion-mnist"
pytestmark = pytest.mark.skipif(
    not os.path.isdir(DEBIAN), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
)


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    # An empty data dir and cache first in the search order: the files must come from Debian's folder.
    empty = tmp_path_factory.mktemp("empty")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(empty)
    try:
        return load_dataset("fashion-mnist", data_dir=str(empty), download=False)
    finally:
        if old is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = old


def test_the_debian_files_load_whole(fashion):
    assert fashion.train_images.shape == (60000, 1, 28, 28) and fashion.train_images.dtype == np.uint8
    assert fashion.test_images.shape == (10000, 1, 28, 28)
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
    assert np.bincount(fashion.train_labels, minlength=10).tolist() == [6000] * 10
    assert np.bincount(fashion.test_labels, minlength=10).tolist() == [1000] * 10
    assert len(fashion.classes) == 10 and fashion.classes[9] == "Ankle boot"
    assert len(fashion.source) == 4 and all(p.startswith(DEBIAN) for p in fashion.source.values())
    # Real images, not blank: mean pixel of the training set is about 72.9 (0.286 * 255).
    assert 70 < fashion.train_images.mean() < 76


def test_lenet5_learns_real_fashion_mnist_in_one_short_epoch(fashion):
    nc.manual_seed(0)
    model = nc.models.lenet5()
    opt = nc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    norm = dict(mean=fashion.mean, std=fashion.std)
    train = DataLoader(fashion.train_images[:8192], fashion.train_labels[:8192], batch_size=64, seed=0, **norm)
    val = DataLoader(fashion.test_images[:2000], fashion.test_labels[:2000], batch_size=500, shuffle=False, **norm)
    trainer = Trainer(model, nc.losses.CrossEntropyLoss(), opt, train, val, progress=False, num_classes=10)
    assert trainer.fit(1) == "finished"
    # Chance is 10%; one pass over 8k real images gets LeNet-5 well past 70%.
    assert trainer.history[0]["val_acc"] > 0.70, trainer.history
