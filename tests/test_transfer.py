"""Transfer learning from the command line: class subsets, few images per class, --init-from,
--freeze; and the lesson itself on real Fashion-MNIST (a frozen pretrained trunk beats training
from scratch on 50 labelled images per class)."""

import json
import os

import numpy as np
import pytest

from numbacnn.data import subset, synthetic

DEBIAN = "/usr/share/datasets/fashion-mnist"


def test_subset_relabels_in_order_and_limits_training_images():
    data = synthetic(train_size=400, test_size=200, size=8, seed=0)
    part = subset(data, [7, 2], per_class=5)
    assert part.classes == (data.classes[7], data.classes[2])
    assert np.bincount(part.train_labels).tolist() == [5, 5]
    assert np.array_equal(part.test_labels == 0, data.test_labels[np.isin(data.test_labels, [7, 2])] == 7)
    with pytest.raises(ValueError, match="distinct indices"):
        subset(data, [1, 1])


def test_init_from_freeze_and_resume_keep_the_trunk(tmp_path, cli):
    common = ["--dataset", "synthetic", "--synthetic-size", 256, "--quiet", "--no-plots"]
    r = cli("train", "lenet5", *common, "--epochs", 1, "--classes", "0-4", "--out", tmp_path / "pre")
    assert r.exit_code == 0, r.output
    pre = tmp_path / "pre/checkpoint.npz"
    r = cli("train", "lenet5", *common, "--epochs", 1, "--classes", "5-9", "--per-class", 8, "--num-classes", 6,
            "--init-from", pre, "--freeze", "0", "--freeze", "3", "--out", tmp_path / "tl")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "loaded 8 tensors" in r.output and "skipped (absent here or another shape): 11.weight, 11.bias" in r.output
    assert "frozen: 0.weight, 0.bias, 3.weight, 3.bias" in r.output
    r = cli("train", "--resume", tmp_path / "tl/checkpoint.npz", "--epochs", 2, "--quiet")
    assert r.exit_code == 0, r.output
    with np.load(pre) as a, np.load(tmp_path / "tl/checkpoint.npz") as b:
        for key in ("model/0.weight", "model/0.bias", "model/3.weight", "model/3.bias"):
            np.testing.assert_array_equal(a[key], b[key])  # frozen through two epochs and a resume
        assert not np.array_equal(a["model/7.weight"], b["model/7.weight"])
        assert b["model/11.weight"].shape == (6, 84)
        assert json.loads(b["meta"].tobytes())["config"]["freeze"] == ["0", "3"]


def test_bad_transfer_options_are_named(tmp_path, cli):
    common = ["--dataset", "synthetic", "--synthetic-size", 64, "--epochs", 1, "--quiet"]
    r = cli("train", "lenet5", *common, "--freeze", "conv9", "--out", tmp_path / "a")
    assert r.exit_code == 2 and "--freeze conv9" in r.output and "modules: 0, 11, 3" in r.output
    r = cli("train", "lenet5", *common, "--classes", "3-x", "--out", tmp_path / "b")
    assert r.exit_code == 2 and "not a class list" in r.output
    r = cli("train", "lenet5", *common, "--num-classes", 3, "--out", tmp_path / "c")
    assert r.exit_code == 2 and "fewer than the 10 classes" in r.output


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.isdir(DEBIAN), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
)
def test_a_frozen_pretrained_trunk_beats_training_from_scratch_on_50_images_per_class(tmp_path, cli):
    r = cli("train", "lenet5", "--classes", "0-4", "--epochs", 2, "--out", tmp_path / "pre", "--quiet", "--no-plots")
    assert r.exit_code == 0, r.output
    few = ["--classes", "5-9", "--per-class", 50, "--epochs", 30, "--quiet", "--no-plots", "--json"]
    accuracy = {}
    for name, extra in {
        "transfer": ["--init-from", tmp_path / "pre/checkpoint.npz", "--freeze", "0", "--freeze", "3"],
        "scratch": [],
    }.items():
        r = cli("train", "lenet5", *few, *extra, "--out", tmp_path / name)
        assert r.exit_code == 0, r.output
        accuracy[name] = json.loads(r.output.strip().splitlines()[-1])["history"][-1]["val_acc"]
    assert accuracy["transfer"] > accuracy["scratch"] + 0.01, accuracy
