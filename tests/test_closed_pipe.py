"""A closed stdout never loses a file the user asked for (``predict ... --csv out.csv | head``):
the command writes it regardless, then exits quietly with 141, as a Unix tool killed by SIGPIPE.
The commands run as real processes whose stdout is a pipe closed before they print."""

import subprocess
import sys

import numpy as np
import pytest

from numbacnn.cli.pipes import CLOSED_PIPE_EXIT, PipeGuard


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cli):
    """A LeNet-5 checkpoint and a folder of 200 images of its size."""
    root = tmp_path_factory.mktemp("pipes")
    r = cli("train", "lenet5", "--dataset", "synthetic", "--epochs", 1, "--synthetic-size", 64, "--out", root / "run")
    assert r.exit_code == 0, r.output
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(200):
        np.save(images / f"{i:03d}.npy", rng.random((1, 28, 28), dtype=np.float32) * 255)
    return root / "run" / "checkpoint.npz", images


def _into_closed_pipe(*args):
    """Run ``numbacnn ARGS`` with its stdout a pipe whose reader has already gone."""
    process = subprocess.Popen(
        [sys.executable, "-m", "numbacnn", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # like `| head` that has read what it wanted
    stderr = process.stderr.read()
    return process.wait(timeout=300), stderr


def test_predict_writes_its_csv_then_exits_quietly(trained, tmp_path):
    checkpoint, images = trained
    code, stderr = _into_closed_pipe("predict", checkpoint, images, "--csv", tmp_path / "out.csv", "--top-k", 2)
    assert code == CLOSED_PIPE_EXIT and stderr == ""
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0] == "path,class,probability" and len(rows) == 1 + 2 * 200


def test_evaluate_writes_its_plot_then_exits_quietly(trained, tmp_path):
    pytest.importorskip("matplotlib")
    checkpoint, _ = trained
    code, stderr = _into_closed_pipe("evaluate", checkpoint, "--plot", tmp_path / "confusion.png")
    assert code == CLOSED_PIPE_EXIT and stderr == ""
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args", [("summary", "resnet20", "--json"), ("bench", "peak", "--json")])
def test_other_printing_commands_exit_quietly(args):
    code, stderr = _into_closed_pipe(*args)
    assert code == CLOSED_PIPE_EXIT and stderr == ""


def test_the_guard_drops_writes_after_the_break_and_keeps_the_rest():
    class Pipe:
        encoding, errors = "utf-8", "strict"

        def __init__(self):
            self.written = []

        def write(self, text):
            if len(self.written) == 2:
                raise BrokenPipeError
            self.written.append(text)

        def flush(self):
            raise AssertionError("a broken pipe is not flushed again")

    pipe = Pipe()
    guard = PipeGuard(pipe)
    for line in ("a", "b", "c", "d"):
        assert guard.write(line) == 1
    guard.flush()
    assert guard.broken and pipe.written == ["a", "b"]
