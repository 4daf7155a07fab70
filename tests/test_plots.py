"""PNG plots (optional matplotlib; CI installs the `plot` extra) and the CLI without matplotlib."""

import struct

import numpy as np
import pytest

from numbacnn.cli import plots

HISTORY = [
    {"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5 + 0.1 * e, "val_loss": 1.2 / e, "val_acc": 0.45 + 0.1 * e}
    for e in (1, 2, 3)
]


def png_size(path):
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_history_and_confusion_plots_are_pngs(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra (pip install 'numbacnn[plot]') is not installed")
    assert plots.plot_history(HISTORY, str(tmp_path / "c.png"), "t") == str(tmp_path / "c.png")
    w, h = png_size(tmp_path / "c.png")
    assert w > 400 and h > 200
    confusion = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    plots.plot_confusion(confusion, ["a", "b", "c"], str(tmp_path / "m.png"))
    assert min(png_size(tmp_path / "m.png")) > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "m.png"]  # no temporary left


def test_bad_plot_input_is_named(tmp_path):
    with pytest.raises(plots.PlotError, match="nothing to plot"):
        plots.plot_history([], str(tmp_path / "x.png"))
    if plots.available():
        with pytest.raises(plots.PlotError, match="does not fit 2 classes"):
            plots.plot_confusion(np.eye(3), ["a", "b"], str(tmp_path / "x.png"))


def test_train_writes_curves_and_confusion(tmp_path, cli):
    pytest.importorskip("matplotlib", reason="the plot extra (pip install 'numbacnn[plot]') is not installed")
    out = tmp_path / "run"
    r = cli(
        "train", "lenet5", "--dataset", "synthetic", "--epochs", 1, "--synthetic-size", 128, "--out", out, "--quiet"
    )
    assert r.exit_code == 0, r.output
    assert png_size(out / "curves.png")[0] > 400 and png_size(out / "confusion.png")[0] > 100
    r = cli("evaluate", out / "checkpoint.npz", "--plot", tmp_path / "eval.png")
    assert r.exit_code == 0, r.output
    assert png_size(tmp_path / "eval.png")[0] > 100


def test_without_matplotlib(tmp_path, monkeypatch, cli):
    """--plots fails before training with the install command; the default run just skips plots."""
    monkeypatch.setattr(plots, "available", lambda: False)
    out = tmp_path / "run"
    r = cli("train", "lenet5", "--dataset", "synthetic", "--epochs", 1, "--out", out, "--plots")
    assert r.exit_code == 2 and "pip install 'numbacnn[plot]'" in r.output
    assert not out.exists()
    r = cli("train", "lenet5", "--dataset", "synthetic", "--epochs", 1, "--synthetic-size", 64, "--out", out, "--quiet")
    assert r.exit_code == 0 and (out / "checkpoint.npz").is_file() and not (out / "curves.png").exists()
    r = cli("evaluate", out / "checkpoint.npz", "--plot", tmp_path / "e.png")
    assert r.exit_code == 2 and "matplotlib" in r.output
    with pytest.raises(plots.PlotError, match="numbacnn\\[plot\\]"):
        plots.plot_history(HISTORY, str(tmp_path / "x.png"))
