"""Odd user data, one class of input per test: a data .npz whose headers lie, absurd labels,
files that are not regular files (dangling links, loops of links, FIFOs), quoted CSV cells, and
the CSV cache. Each is refused with one line and exit 3 (or skipped and counted where the user
asked for that), before anything hangs or allocates what the file cannot back."""

import io
import os
import re
import signal
import zipfile

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.data import arrays, decoded_cache, load_own
from numbacnn.errors import DataError

PIL = pytest.importorskip("PIL.Image", reason="image folders need Pillow (pip install 'numbacnn[images]')")
pytestmark = pytest.mark.usefixtures("decoded_cache_dir")  # not the user's cache


@pytest.fixture
def deadline():
    """Fails the test (instead of hanging the suite) when a read blocks for 60 s: the alarm's
    handler raises in the main thread, which interrupts a blocking open()."""

    def expired(signum, frame):
        raise TimeoutError("the read blocked for 60 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _npy_bytes(shape, dtype, payload):
    """A .npy member whose header claims ``shape`` whatever ``payload`` holds."""
    header = repr({"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload


def _keras_npz(path, members):
    """A Keras-layout .npz from {name: .npy bytes}, the rest of the four arrays made honestly."""
    x = np.zeros((4, 8, 8), np.uint8)
    honest = {"x_train": x, "y_train": np.arange(4), "x_test": x[:2], "y_test": np.arange(2)}
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in honest.items():
            if name not in members:
                buffer = io.BytesIO()
                np.save(buffer, array)
                members[name] = buffer.getvalue()
        for name, data in members.items():
            archive.writestr(name + ".npy", data)
    return path


def test_a_lying_npy_header_in_a_data_npz_is_refused_before_allocating(cli, tmp_path):
    # 10^8 images of 28x28 claimed (73 GiB), 2 KB present.
    path = _keras_npz(tmp_path / "data.npz", {"x_train": _npy_bytes((10**8, 28, 28), np.uint8, bytes(2048))})
    with pytest.raises(DataError, match=r"x_train' claims shape \(100000000, 28, 28\).*holds 2048 bytes"):
        load_own(path)
    r = cli("train", "lenet5", "--dataset", path, "--epochs", "1", "--out", tmp_path / "run")
    assert r.exit_code == 3 and "error:" in r.output and "Traceback" not in r.output
    # Every other damage the checkpoint reader refuses is a DataError here too.
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="not a readable .npz data set"):
        load_own(tmp_path / "cut.npz")
    pickled = _keras_npz(tmp_path / "objects.npz", {"y_test": _npy_bytes((2,), object, b"")})
    with pytest.raises(DataError, match="not numbers"):
        load_own(pickled)


@pytest.mark.parametrize("label", [2**40, 2**63 - 1, 1e300])
def test_an_absurd_label_is_refused_before_any_per_class_table(cli, tmp_path, label):
    path = tmp_path / "labels.npz"
    y_train = np.array([0, 1, 2, label], dtype=np.float64 if isinstance(label, float) else np.int64)
    x = np.zeros((4, 8, 8), np.uint8)
    np.savez(path, x_train=x, y_train=y_train, x_test=x[:2], y_test=np.arange(2))
    with pytest.raises(DataError, match="out of range: labels are class indices"):
        load_own(path)
    r = cli("train", "lenet5", "--dataset", path, "--epochs", "1", "--out", tmp_path / "run")
    assert r.exit_code == 3 and "out of range" in r.output and "Traceback" not in r.output


def test_more_classes_than_training_images_is_refused(tmp_path):
    x = np.zeros((4, 8, 8), np.uint8)
    np.savez(tmp_path / "gaps.npz", x_train=x, y_train=np.array([0, 1, 2, 9]), x_test=x[:2], y_test=np.arange(2))
    with pytest.raises(DataError, match=r"label 9 means 10 classes, more than the 4 training images"):
        load_own(tmp_path / "gaps.npz")


def _folder_with(tmp_path, odd):
    """An image folder of 3 classes with one odd entry ``odd(path)`` added as class "a"'s pipe.png."""
    data = nc.data.synthetic(train_size=36, test_size=9, channels=1, size=12, num_classes=3, seed=0)
    nc.data.export_images(data, tmp_path / "tmp", splits=("train",))
    folder = tmp_path / "tmp" / "train"
    first = sorted(os.listdir(folder))[0]
    odd(folder / first / "pipe.png")
    return folder


ODD_FILES = {
    "fifo": (os.mkfifo, "a FIFO, not an image file"),
    "dangling link": (lambda p: os.symlink(p.parent / "missing.png", p), "cannot read (No such file or directory)"),
    "link loop": (lambda p: os.symlink(p, p), "cannot read (Too many levels of symbolic links)"),
}


@pytest.mark.parametrize("kind", list(ODD_FILES))
def test_a_file_that_is_not_a_regular_file_is_named_or_skipped_and_never_opened(tmp_path, kind, deadline, cli):
    make, why = ODD_FILES[kind]
    folder = _folder_with(tmp_path, make)
    with pytest.raises(DataError, match=f"pipe.png: {re.escape(why)}.*--skip-bad-images"):
        load_own(folder, image_size=12)
    own = load_own(folder, image_size=12, skip_bad_images=True)
    assert own.source["bad_images"] == 1 and len(own.train_images) + len(own.test_images) == 36
    r = cli("train", "lenet5", "--dataset", folder, "--epochs", "1", "--out", tmp_path / "run")
    assert r.exit_code == 3 and "pipe.png" in r.output and "Traceback" not in r.output


def test_predict_refuses_a_fifo_by_name(cli, tmp_path, deadline):
    data = nc.data.synthetic(train_size=60, test_size=20, channels=1, size=28, num_classes=3, seed=0)
    folder = tmp_path / "set"
    nc.data.export_images(data, folder)
    r = cli("train", "lenet5", "--dataset", folder, "--epochs", "1", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    os.mkfifo(tmp_path / "pipe.png")
    r = cli("predict", tmp_path / "run" / "checkpoint.npz", tmp_path / "pipe.png")
    assert r.exit_code == 3 and "pipe.png: a FIFO, not an image file" in r.output


def test_a_fifo_named_as_a_data_file_is_refused(tmp_path, deadline):
    os.mkfifo(tmp_path / "data.csv")
    with pytest.raises(DataError, match="data.csv: a FIFO"):
        load_own(tmp_path / "data.csv")


def _csv_text(rows, quote):
    q = '"' if quote else ""
    lines = ["label," + ",".join(f"{q}pixel{i}{q}" for i in range(4))]
    lines += [",".join(f"{q}{v}{q}" for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def test_quoted_csv_cells_read_as_the_csv_module_reads_them(tmp_path):
    rows = [[k % 3, k, 255 - k, 7, 0] for k in range(30)]
    (tmp_path / "plain.csv").write_text(_csv_text(rows, quote=False))
    (tmp_path / "quoted.csv").write_text(_csv_text(rows, quote=True))  # as R's write.csv writes
    plain, quoted = arrays.read_csv_images(tmp_path / "plain.csv"), arrays.read_csv_images(tmp_path / "quoted.csv")
    assert np.array_equal(plain[0], quoted[0]) and np.array_equal(plain[1], quoted[1])
    assert plain[0].shape == (30, 1, 2, 2) and plain[0][1, 0, 0, 0] == 1
    # A bad cell is still named by its line and column, counted by the csv module's rules.
    (tmp_path / "bad.csv").write_text(_csv_text(rows[:2], quote=True) + '1,"2,3",4,5,6\n')
    with pytest.raises(DataError, match=r"line 4, column 2: '2,3' is not a number"):
        arrays.read_csv_images(tmp_path / "bad.csv")


def test_a_csv_is_parsed_once_then_mapped_and_parsed_again_when_it_changes(tmp_path, monkeypatch, decoded_cache_dir):
    rows = [[k % 3, k, 255 - k, 7, 0] for k in range(30)]
    path = tmp_path / "data.csv"
    path.write_text(_csv_text(rows, quote=False))
    parses = []
    parse = arrays.read_csv_images
    monkeypatch.setattr(decoded_cache, "read_csv_images", lambda p: parses.append(p) or parse(p))
    first = load_own(path, seed=0)
    second = load_own(path, seed=0)
    assert len(parses) == 1  # the second run read the cache
    assert np.array_equal(first.train_images, second.train_images) and first.classes == second.classes
    assert not list(decoded_cache_dir.glob(".partial-*"))  # built aside and renamed into place
    entry = next(decoded_cache_dir.glob("csv-*"))
    assert isinstance(np.load(entry / "images.npy", mmap_mode="r"), np.memmap)
    rows[0][1] = 200
    path.write_text(_csv_text(rows, quote=False))
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    third = load_own(path, seed=0)
    assert len(parses) == 2 and not np.array_equal(third.train_images, first.train_images)
