"""Flip test-time augmentation (--tta flip): the mean softmax of an image and its mirror, in
evaluate and predict, refused for a model trained without flips; the recipe and the flags' help."""

import json

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.losses import CrossEntropyLoss
from numbacnn.training import RECIPES, class_probabilities, evaluate
from numbacnn.training.config import resolve_config
from numbacnn.training.resuming import resume_config


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _model():
    nc.manual_seed(1)
    return nc.models.lenet5(in_channels=1, num_classes=10).eval()


def test_flip_averages_the_softmax_of_the_image_and_its_mirror(rng):
    model = _model()
    x = rng.standard_normal((5, 1, 28, 28)).astype(np.float32)
    plain = _softmax(model(x).astype(np.float64))
    mirror = _softmax(model(np.ascontiguousarray(x[..., ::-1])).astype(np.float64))
    np.testing.assert_allclose(class_probabilities(model, x), plain, rtol=1e-5, atol=1e-7)
    flipped = class_probabilities(model, x, "flip")
    np.testing.assert_allclose(flipped, (plain + mirror) / 2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(flipped.sum(axis=1), 1, rtol=1e-6)
    assert not np.allclose(flipped, plain, atol=1e-4)  # an untrained LeNet is not mirror-symmetric
    # A mirror-symmetric batch is its own mirror: TTA changes nothing.
    symmetric = np.ascontiguousarray(x + x[..., ::-1])
    np.testing.assert_allclose(class_probabilities(model, symmetric, "flip"), class_probabilities(model, symmetric),
                               rtol=1e-5, atol=1e-7)  # fmt: skip
    with pytest.raises(ValueError, match="tta must be None or one of flip"):
        class_probabilities(model, x, "rotate")


def test_evaluate_with_flip_counts_each_image_by_the_mean(rng):
    model = _model()
    images = rng.integers(0, 256, (20, 1, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, 20)
    loader = nc.data.DataLoader(images, labels, batch_size=8, shuffle=False, mean=0.3, std=0.3)
    result = evaluate(model, loader, CrossEntropyLoss(), 10, tta="flip")
    x = np.concatenate([xb.copy() for xb, _ in loader.epoch(0)])
    probs = (_softmax(model(x).astype(np.float64)) + _softmax(model(np.ascontiguousarray(x[..., ::-1])))) / 2
    assert result["top1"] == pytest.approx(np.mean(probs.argmax(axis=1) == labels))
    assert result["loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(20), labels])), rel=1e-5)
    assert result["confusion"].sum() == 20


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two LeNet-5 runs of one epoch on synthetic data: with flips (--augment) and without."""
    from click.testing import CliRunner

    from numbacnn.cli import main

    root = tmp_path_factory.mktemp("tta")
    paths = {}
    for flips in ("--augment", "--no-augment"):
        out = root / flips.strip("-")
        args = ["train", "lenet5", "--dataset", "synthetic", "--synthetic-size", "64", "--epochs", "1"]
        r = CliRunner().invoke(main, args + [flips, "--quiet", "--out", str(out)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        paths[flips] = out / "checkpoint.npz"
    return paths


def test_commands_refuse_flip_tta_for_a_model_trained_without_flips(checkpoints, cli, tmp_path):
    image = tmp_path / "a.npy"
    np.save(image, np.zeros((28, 28), np.uint8))
    for command in (("evaluate", checkpoints["--no-augment"]), ("predict", checkpoints["--no-augment"], image)):
        r = cli(*command, "--tta", "flip")
        assert r.exit_code == 2
        assert "--tta flip" in r.stderr and "trained without flips" in r.stderr and "Traceback" not in r.output


def test_evaluate_and_predict_with_flip_tta(checkpoints, cli, tmp_path):
    ckpt = checkpoints["--augment"]
    r = cli("evaluate", ckpt, "--tta", "flip", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["tta"] == "flip" and result["samples"] == 512
    images = np.random.default_rng(0).integers(0, 256, (2, 28, 28)).astype(np.uint8)
    for i, image in enumerate(images):
        np.save(tmp_path / f"{i}.npy", image)
    r = cli("predict", ckpt, tmp_path / "0.npy", tmp_path / "1.npy", "--tta", "flip", "--top-k", 10, "--json")
    assert r.exit_code == 0, r.output
    predicted = json.loads(r.stdout)
    from numbacnn.cli.common import checkpoint_model, read_batch

    model, facts, _ = checkpoint_model(str(ckpt))
    x = read_batch([str(tmp_path / "0.npy"), str(tmp_path / "1.npy")], facts)
    expected = (_softmax(model(x).astype(np.float64)) + _softmax(model(np.ascontiguousarray(x[..., ::-1])))) / 2
    for row, probs in zip(predicted, expected):
        got = np.zeros(10)
        for t in row["top"]:
            got[t["index"]] = t["probability"]
        np.testing.assert_allclose(got, probs, rtol=1e-5, atol=1e-7)


def test_help_documents_the_flags(cli):
    train_help = cli("train", "--help").output
    for flag in ("--random-erasing", "--erasing-area", "--erasing-ratio", "--ema", "--recipe", "--nesterov"):
        assert flag in train_help, flag
    for command in ("evaluate", "predict"):
        assert "--tta [flip]" in cli(command, "--help").output


def test_a_recipe_sets_defaults_that_options_beside_it_override():
    config = resolve_config("resnet20", recipe="long")
    for key, value in RECIPES["long"][1].items():
        assert config[key] == value, key
    assert config["recipe"] == "long"
    assert resolve_config("resnet20", recipe="long", epochs=3, ema=0.99)["epochs"] == 3
    with pytest.raises(ValueError, match="unknown recipe 'short': long"):
        resolve_config("resnet20", recipe="short")
    # --resume continues the run exactly: the averaging and erasing settings cannot change.
    saved = resolve_config("resnet20", random_erasing=0.5, ema=0.999)
    with pytest.raises(ValueError, match=r"--ema 0.99 \(the checkpoint has 0.999\)"):
        resume_config(saved, {"ema": 0.99})
    old = {k: v for k, v in saved.items() if k not in ("ema", "random_erasing", "recipe")}  # before these existed
    assert resume_config(old, {"ema": None, "random_erasing": 0.0})["model"] == "resnet20"
    with pytest.raises(ValueError, match="--random-erasing 0.5"):
        resume_config(old, {"random_erasing": 0.5})
