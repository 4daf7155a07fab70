"""``numbacnn attack``, ``numbacnn visualize`` and ``numbacnn train --adversarial`` on a small
synthetic run (PNG output where matplotlib is installed; CI installs it)."""

import json

import numpy as np
import pytest

from numbacnn.cli import plots

needs_matplotlib = pytest.mark.skipif(not plots.available(), reason="needs matplotlib: pip install 'numbacnn[plot]'")
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.usefixtures("quick_start_on")  # as a user has it


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("inspect") / "run"
    r = cli("train", "lenet5", "--dataset", "synthetic", "--synthetic-size", 512, "--epochs", 2, "--out", out,
            "--quiet", "--no-plots")  # fmt: skip
    assert r.exit_code == 0, r.output
    return out / "checkpoint.npz"


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "img.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8))
    return path


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_attack_reports_accuracy_and_perturbation(checkpoint, method, cli):
    r = cli("attack", checkpoint, "--method", method, "--eps", 0.1, "--steps", 3, "--limit", 100, "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["samples"] == 100 and result["method"] == method
    assert result["adversarial_accuracy"] < result["clean_accuracy"]
    assert result["mean_linf"] <= 0.1 + 1e-5  # within the eps-ball, in pixel units
    if method == "fgsm":  # a full eps step on (nearly) every image's pixels that are not clipped
        assert result["mean_linf"] == pytest.approx(0.1, abs=1e-5)
    assert 0 < result["mean_l2"] <= 0.1 * 28 + 1e-4  # at most eps in every one of 784 pixels


def test_attack_with_eps_zero_changes_nothing(checkpoint, cli):
    result = json.loads(cli("attack", checkpoint, "--eps", 0, "--limit", 50, "--json").stdout)
    assert result["adversarial_accuracy"] == result["clean_accuracy"] and result["mean_linf"] == 0


@needs_matplotlib
def test_attack_and_visualize_write_pngs(checkpoint, image, tmp_path, cli):
    r = cli("attack", checkpoint, "--limit", 20, "--plot", tmp_path / "grid.png")
    assert r.exit_code == 0, r.output
    assert "grid written" in r.output and (tmp_path / "grid.png").read_bytes()[:8] == PNG
    for args in (
        ["--filters"],
        ["--filters", "--layer", "3"],
        [image, "--feature-maps", "--layer", "0", "--layer", "3"],
        [image, image, "--saliency", "--target", 2],
    ):
        out = tmp_path / f"v{len(list(tmp_path.iterdir()))}.png"
        r = cli("visualize", checkpoint, *args, "--out", out)
        assert r.exit_code == 0, r.output
        assert out.read_bytes()[:8] == PNG


def test_visualize_errors_are_usage_errors(checkpoint, image, tmp_path, cli):
    assert cli("visualize", checkpoint).exit_code == 2  # nothing chosen
    r = cli("visualize", checkpoint, "--saliency")
    assert r.exit_code == 2 and "needs at least one IMAGE" in r.output
    r = cli("visualize", checkpoint, image, "--feature-maps", "--layer", "nope", "--out", tmp_path / "x.png")
    assert r.exit_code == 2 and "no layer named 'nope'" in r.output


def test_adversarial_training_runs_and_is_recorded(tmp_path, cli):
    r = cli("train", "lenet5", "--dataset", "synthetic", "--synthetic-size", 128, "--epochs", 1, "--adversarial",
            "fgsm", "--adv-eps", 0.05, "--out", tmp_path / "adv", "--quiet", "--no-plots")  # fmt: skip
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "adv/checkpoint.npz") as z:
        config = json.loads(z["meta"].tobytes())["config"]
    assert config["adversarial"] == "fgsm" and config["adv_eps"] == 0.05
    r = cli("train", "lenet5", "--dataset", "synthetic", "--adv-eps", 0.05, "--out", tmp_path / "no")
    assert r.exit_code == 2 and "--adv-eps needs --adversarial" in r.output
