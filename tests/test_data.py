"""Data: IDX reading, search order, verified downloads from a local HTTP server, loader, errors."""

import functools
import gzip
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from numbacnn.data import DataError, DataLoader, load_dataset, read_idx, sources, synthetic, write_idx

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No user cache, no $NUMBACNN_DATA, no Debian folder: only what a test provides."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NUMBACNN_DATA", raising=False)
    real = sources.search_dirs
    monkeypatch.setattr(
        sources,
        "search_dirs",
        lambda name, data_dir=None: [d for d in real(name, data_dir) if not str(d).startswith("/usr/share")],
    )
    return tmp_path


def write_small_mnist(folder, n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test),
    }
    for name, a in arrays.items():
        write_idx(folder / name, a)
    return arrays


def test_idx_round_trip_and_dataset_from_data_dir(isolated):
    arrays = write_small_mnist(isolated / "d" / "fashion-mnist")
    np.testing.assert_array_equal(read_idx(isolated / "d" / "fashion-mnist" / FILES[0]), arrays[FILES[0]])
    ds = load_dataset("fashion-mnist", data_dir=str(isolated / "d"), download=False)
    assert ds.train_images.shape == (20, 1, 28, 28) and ds.train_images.dtype == np.uint8
    np.testing.assert_array_equal(ds.test_labels, arrays[FILES[3]])
    assert ds.num_classes == 10 and ds.classes[9] == "Ankle boot"


def test_environment_folder_is_searched(isolated, monkeypatch):
    write_small_mnist(isolated / "env" / "mnist")
    monkeypatch.setenv("NUMBACNN_DATA", str(isolated / "env"))
    assert load_dataset("mnist", download=False).train_images.shape[0] == 20


def test_missing_data_says_where_it_looked_and_how_to_get_it(isolated):
    (isolated / "nowhere").mkdir()
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", data_dir=str(isolated / "nowhere"), download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz not found" in msg and str(isolated / "nowhere") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "http" in msg


@pytest.mark.parametrize(
    "corrupt,match",
    [
        (lambda raw: raw[:-100], "truncated"),
        (lambda raw: b"\x00\x00\x09\x03" + raw[4:], "bad magic"),
    ],
)
def test_corrupt_idx_is_reported(isolated, corrupt, match):
    folder = isolated / "d" / "fashion-mnist"
    write_small_mnist(folder)
    path = folder / FILES[0]
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(corrupt(raw)))
    with pytest.raises(DataError, match=match):
        load_dataset("fashion-mnist", data_dir=str(isolated / "d"), download=False)


def test_truncated_gzip_is_reported(isolated):
    folder = isolated / "d" / "fashion-mnist"
    write_small_mnist(folder)
    path = folder / FILES[0]
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        load_dataset("fashion-mnist", data_dir=str(isolated / "d"), download=False)


@pytest.fixture
def http_mirror(isolated, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving a folder; yields (folder, set_checksums)."""
    served = isolated / "served"
    write_small_mnist(served)
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NUMBACNN_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
    files = {f: (hashlib.md5((served / f).read_bytes()).hexdigest(),) for f in FILES}
    monkeypatch.setitem(sources.SPECS, "fashion-mnist", dict(sources.SPECS["fashion-mnist"], files=files))
    yield served
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_verifies_and_lands_in_the_cache(http_mirror, isolated):
    ds = load_dataset("fashion-mnist")
    assert ds.train_images.shape == (20, 1, 28, 28)
    cached = isolated / "cache" / "numbacnn" / "fashion-mnist"
    assert sorted(os.listdir(cached)) == sorted(FILES)  # no stray .part files
    np.testing.assert_array_equal(read_idx(cached / FILES[1]), read_idx(http_mirror / FILES[1]))


def test_download_with_wrong_checksum_is_discarded(http_mirror, isolated):
    (http_mirror / FILES[2]).write_bytes(gzip.compress(b"not the real file"))
    with pytest.raises(DataError, match="failed its checksum"):
        load_dataset("fashion-mnist")
    assert not (isolated / "cache" / "numbacnn" / "fashion-mnist" / FILES[2]).exists()
    assert not [f for f in os.listdir(isolated / "cache" / "numbacnn" / "fashion-mnist") if f.endswith(".part")]


def test_truncated_download_is_detected(http_mirror, isolated):
    path = http_mirror / FILES[0]
    path.write_bytes(path.read_bytes()[:-50])  # served whole, but not what the checksum promises
    with pytest.raises(DataError, match="checksum"):
        load_dataset("fashion-mnist")


def test_unreachable_mirror_gives_the_missing_data_message(isolated, monkeypatch):
    monkeypatch.setenv("NUMBACNN_MIRROR", "http://127.0.0.1:9/")
    with pytest.raises(DataError, match="Download failed"):
        load_dataset("mnist")


def test_loader_normalises_shuffles_reproducibly_and_covers_every_sample():
    ds = synthetic(train_size=50, test_size=10, channels=2, size=8, seed=1)
    loader = DataLoader(ds.train_images, ds.train_labels, batch_size=16, seed=3, mean=(0.5, 0.25), std=(0.5, 0.25))
    assert len(loader) == 4
    seen = []
    for x, y in loader.epoch(0):
        assert x.dtype == np.float32 and x.flags.c_contiguous
        seen.append(y.copy())
    seen = np.concatenate(seen)
    assert sorted(seen.tolist()) == sorted(ds.train_labels.tolist())
    order = loader.order(0)
    x0, _ = next(loader.epoch(0))
    expected = (ds.train_images[order[:16]] / 255.0 - np.array([0.5, 0.25]).reshape(1, 2, 1, 1)) / np.array(
        [0.5, 0.25]
    ).reshape(1, 2, 1, 1)
    np.testing.assert_allclose(x0, expected, rtol=1e-5, atol=1e-5)
    assert not np.array_equal(loader.order(0), loader.order(1))
    np.testing.assert_array_equal(loader.order(1), DataLoader(ds.train_images, ds.train_labels, 16, seed=3).order(1))


def test_augmentation_is_reproducible_and_resumable():
    ds = synthetic(train_size=32, test_size=8, size=10, seed=2)
    loader = DataLoader(ds.train_images, ds.train_labels, batch_size=8, seed=5, augment=True, pad=2)
    full = [x.copy() for x, _ in loader.epoch(2)]
    resumed = [x.copy() for x, _ in loader.epoch(2, start_batch=2)]
    np.testing.assert_array_equal(full[2], resumed[0])
    plain = DataLoader(ds.train_images, ds.train_labels, batch_size=8, seed=5)
    assert not np.array_equal(full[0], next(plain.epoch(2))[0])


def test_synthetic_is_deterministic_and_learnable_shape():
    a, b = (
        synthetic(train_size=10, test_size=5, channels=3, size=12, seed=4),
        synthetic(train_size=10, test_size=5, channels=3, size=12, seed=4),
    )
    np.testing.assert_array_equal(a.train_images, b.train_images)
    assert a.train_images.shape == (10, 3, 12, 12)


def test_a_data_dir_typo_is_an_error_not_a_silent_fallback(isolated, monkeypatch):
    write_small_mnist(isolated / "real" / "mnist")
    monkeypatch.setenv("NUMBACNN_DATA", str(isolated / "real"))
    with pytest.raises(DataError, match="--data-dir .*typo does not exist"):
        load_dataset("mnist", data_dir=str(isolated / "typo"), download=False)
    (isolated / "afile").write_text("x")
    monkeypatch.setenv("NUMBACNN_DATA", str(isolated / "afile"))
    with pytest.raises(DataError, match="NUMBACNN_DATA .*afile is a file, not a folder"):
        load_dataset("mnist", download=False)


def test_a_partial_data_dir_is_refused_rather_than_mixed(isolated, monkeypatch):
    write_small_mnist(isolated / "full" / "mnist")
    partial = isolated / "partial"
    partial.mkdir()
    (partial / FILES[0]).write_bytes((isolated / "full" / "mnist" / FILES[0]).read_bytes())
    monkeypatch.setenv("NUMBACNN_DATA", str(isolated / "full"))
    with pytest.raises(DataError, match="different places") as e:
        load_dataset("mnist", data_dir=str(partial), download=False)
    assert str(partial / FILES[0]) in str(e.value) and str(isolated / "full" / "mnist" / FILES[1]) in str(e.value)


def test_corrupt_gzip_and_absurd_idx_headers_are_data_errors(tmp_path):
    good = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    (tmp_path / "flip.gz").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx(tmp_path / "flip.gz")
    (tmp_path / "dims").write_bytes(bytes([0, 0, 8, 70]) + b"\0" * 400)
    with pytest.raises(DataError, match="70 dimensions"):
        read_idx(tmp_path / "dims")
    (tmp_path / "huge").write_bytes(bytes([0, 0, 8, 3]) + b"\xff" * 12)
    with pytest.raises(DataError, match="promises"):
        read_idx(tmp_path / "huge")


def test_both_splits_are_validated_before_training():
    ds = synthetic(train_size=8, test_size=4)
    ds.test_images = ds.test_images[:, :, :20, :20]
    with pytest.raises(DataError, match="test images of shape"):
        ds.validated()
    ds = synthetic(train_size=8, test_size=4)
    ds.test_images, ds.test_labels = ds.test_images[:0], ds.test_labels[:0]
    with pytest.raises(DataError, match="test split is empty"):
        ds.validated()
    with pytest.raises(ValueError, match="GiB"):
        synthetic(train_size=100_000_000)
