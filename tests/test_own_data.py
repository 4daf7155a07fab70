"""A user's own data: image folders, Keras-layout .npz and Kaggle-layout CSV, through the CLI and
Python; the decoded-image cache; every bad input named with exit 3."""

import csv
import json
import os
import sys

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.data import decode, decoded_cache, load_own
from numbacnn.errors import DataError

PIL = pytest.importorskip("PIL.Image", reason="image folders need Pillow (pip install 'numbacnn[images]')")
pytestmark = pytest.mark.usefixtures("decoded_cache_dir")  # not the user's cache


def small_set(classes=3, per_class=(16, 6), size=20, channels=1, seed=0):
    return nc.data.synthetic(
        train_size=classes * per_class[0], test_size=classes * per_class[1], channels=channels, size=size,
        num_classes=classes, seed=seed,
    )  # fmt: skip


@pytest.fixture
def split_folder(tmp_path):
    """PATH/train/<class>/*.png and PATH/test/<class>/*.png, 20x20 grey, 3 classes."""
    data = small_set()
    nc.data.export_images(data, tmp_path / "split")
    return tmp_path / "split", data


@pytest.fixture
def flat_folder(tmp_path):
    """PATH/<class>/*.png (no test split), 20x20 grey, 3 classes of 20."""
    data = small_set(per_class=(20, 1))
    nc.data.export_images(data, tmp_path / "tmp", splits=("train",))
    os.rename(tmp_path / "tmp" / "train", tmp_path / "flat")
    return tmp_path / "flat", data


def write_csv(path, images, labels, header=True):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(["label"] + [f"pixel{i}" for i in range(images[0].size)])
        for image, label in zip(images, labels):
            writer.writerow([int(label)] + [int(v) for v in image.transpose(1, 2, 0).ravel()])
    return path


def test_a_split_folder_loads_with_class_names_resize_and_training_statistics(split_folder):
    folder, data = split_folder
    own = load_own(folder, image_size=28)
    assert own.classes == data.classes  # the folder names, sorted
    assert own.image_shape == (1, 28, 28)  # resized from 20x20; grey stays 1 channel
    assert len(own.train_images) == len(data.train_images) and len(own.test_images) == len(data.test_images)
    # Files are read per class in sorted order: the labels follow the class folders.
    assert np.array_equal(np.bincount(own.train_labels), np.bincount(data.train_labels))
    expected_mean = own.train_images.astype(np.float64).mean() / 255
    assert own.mean[0] == pytest.approx(expected_mean, abs=1e-6)
    assert own.std[0] == pytest.approx((own.train_images / 255.0).std(), abs=1e-5)
    at_size = load_own(folder, image_size=20)  # no resize: the pixels are the exported ones
    first = sorted(os.listdir(folder / "train" / data.classes[0]), key=str)[0]
    index = int(first.split(".")[0])
    assert np.array_equal(at_size.train_images[0], data.train_images[index])


def test_a_flat_folder_is_split_per_class_by_the_seed(flat_folder):
    folder, _ = flat_folder
    a = load_own(folder, image_size=20, val_split=0.25, seed=3)
    b = load_own(folder, image_size=20, val_split=0.25, seed=3)
    c = load_own(folder, image_size=20, val_split=0.25, seed=4)
    per_class = [len(os.listdir(folder / name)) for name in a.classes]
    # Stratified: a quarter of each class (rounded) is held out.
    assert np.bincount(a.test_labels).tolist() == [round(n / 4) for n in per_class]
    assert np.array_equal(a.test_images, b.test_images)
    assert not np.array_equal(a.test_images, c.test_images)
    assert len(a.train_images) + len(a.test_images) == 60


def test_channels_follow_the_images_unless_given(tmp_path, split_folder):
    folder, _ = split_folder
    assert load_own(folder, image_size=20).image_shape[0] == 1
    assert load_own(folder, image_size=20, channels=3).image_shape[0] == 3
    colour = folder / "train" / "class0" / "colour.png"
    PIL.fromarray(np.full((20, 20, 3), (200, 10, 10), np.uint8), "RGB").save(colour)
    own = load_own(folder, image_size=20)
    assert own.image_shape[0] == 3 and len(own.mean) == 3
    row = np.flatnonzero(own.train_labels == 0)[-1]  # "colour.png" sorts after the digits
    assert own.train_images[row, :, 0, 0].tolist() == [200, 10, 10]


def test_the_second_load_skips_decoding_and_a_changed_file_is_decoded_again(split_folder, monkeypatch):
    folder, _ = split_folder
    first = load_own(folder, image_size=28)
    calls = []
    real = decode.decode_files
    monkeypatch.setattr(decoded_cache, "decode_files", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = load_own(folder, image_size=28)
    assert calls == [] and np.array_equal(first.train_images, second.train_images)
    assert isinstance(second.train_images.base, np.memmap) or isinstance(second.train_images, np.memmap)
    changed = sorted((folder / "test" / "class1").iterdir())[0]
    PIL.fromarray(np.zeros((20, 20), np.uint8), "L").save(changed)
    os.utime(changed, ns=(1, 1))
    third = load_own(folder, image_size=28)
    assert calls == [1] and not np.array_equal(first.test_images, third.test_images)
    load_own(folder, image_size=32)  # another preprocessing: another entry
    assert calls == [1, 1]


def test_an_interrupted_decode_leaves_nothing_in_the_cache(split_folder, monkeypatch, decoded_cache_dir):
    folder, _ = split_folder

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(decoded_cache, "decode_files", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_own(folder, image_size=28)
    assert list(decoded_cache_dir.iterdir()) == []


def test_decoding_in_worker_processes_gives_the_same_arrays(flat_folder, monkeypatch):
    folder, _ = flat_folder
    serial = load_own(folder, image_size=24)
    monkeypatch.setattr(decode, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(decode, "CHUNK_FILES", 7)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    progress = []
    parallel = load_own(folder, image_size=24, channels=1, skip_bad_images=True, progress=lambda *a: progress.append(a))
    assert np.array_equal(serial.train_images, parallel.train_images)
    assert np.array_equal(serial.test_images, parallel.test_images)
    assert progress[-1] == ("decoding 60 images", 60, 60) and len(progress) == 9


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw", "float01"])
def test_an_npz_in_each_layout_gives_the_same_images(tmp_path, layout):
    data = small_set(size=28)
    x_train, x_test = data.train_images, data.test_images
    convert = {
        "nhw": lambda x: x[:, 0],
        "nhwc": lambda x: x.transpose(0, 2, 3, 1),
        "nchw": lambda x: x,
        "float01": lambda x: x[:, 0].astype(np.float32) / 255,
    }[layout]
    path = tmp_path / "data.npz"
    np.savez(path, x_train=convert(x_train), y_train=data.train_labels, x_test=convert(x_test), y_test=data.test_labels)
    own = load_own(path)
    assert np.array_equal(own.train_images, x_train) and np.array_equal(own.test_labels, data.test_labels)
    assert own.classes == ("0", "1", "2")


def test_a_csv_with_a_test_file_or_a_split_and_rgb_pixels(tmp_path):
    data = small_set(size=12, channels=3)
    train = write_csv(tmp_path / "train.csv", data.train_images, data.train_labels)
    test = write_csv(tmp_path / "test.csv", data.test_images, data.test_labels)
    own = load_own(train, test_data=test)
    assert own.image_shape == (3, 12, 12) and np.array_equal(own.test_images, data.test_images)
    split = load_own(train, val_split=0.5, seed=1)
    assert len(split.test_images) == len(data.train_images) // 2
    grey = load_own(train, test_data=test, channels=1, image_size=16)
    assert grey.image_shape == (1, 16, 16)


def _fails(cli, *args, message):
    result = cli(*args)
    assert result.exit_code == 3, result.output
    assert message in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output  # one line (after any progress lines)
    return result


def test_bad_images_are_named_or_skipped_and_counted(cli, split_folder, tmp_path, decoded_cache_dir):
    folder, _ = split_folder
    victim = sorted((folder / "train" / "class2").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:60])  # truncated PNG
    (folder / "train" / "class1" / "notes.png").write_text("not an image")
    run = ("train", "lenet5", "--dataset", folder, "--epochs", 1, "--out", tmp_path / "run", "--quiet")
    # Headers are read first: the file that is no image at all is named before anything is decoded.
    _fails(cli, *run, message="notes.png: cannot read the image (not an image format Pillow recognises)")
    assert [p.name for p in decoded_cache_dir.iterdir()] == []  # nothing half-written
    (folder / "train" / "class1" / "notes.png").rename(folder / "notes.txt")
    result = _fails(cli, *run, message=f"{victim}: cannot read the image (image file is truncated")
    assert "--skip-bad-images" in result.output
    assert [p.name for p in decoded_cache_dir.iterdir()] == []
    (folder / "notes.txt").rename(folder / "train" / "class1" / "notes.png")
    result = cli(*run, "--skip-bad-images")
    assert result.exit_code == 0, result.output
    assert "skipped 2 unreadable images" in result.output


def test_bad_layouts_and_labels_get_one_line_and_exit_3(cli, tmp_path, split_folder):
    folder, data = split_folder
    train = ("train", "lenet5", "--epochs", 1, "--out", tmp_path / "run", "--dataset")
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "empty" / "dogs").mkdir()
    PIL.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "empty" / "dogs" / "a.png")
    _fails(cli, *train, tmp_path / "empty", message="cats: the class folder holds no images")
    (tmp_path / "none").mkdir()
    _fails(cli, *train, tmp_path / "none", message="no images")
    os.rename(folder / "test" / "class2", folder / "test" / "other")
    _fails(cli, *train, folder, message="only in train: class2; only in test: other")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("label,a,b,c,d\n0,1,2,3,4\n1,1,2,3\n")
    _fails(cli, *train, ragged, message="ragged.csv line 3: 4 cells, but the header has 5")
    text = tmp_path / "text.csv"
    text.write_text("label,a,b,c,d\n0,1,2,3,4\n1,1,2,oops,4\n")
    _fails(cli, *train, text, message="text.csv line 3, column 4: 'oops' is not a number")
    negative = tmp_path / "negative.csv"
    negative.write_text("label,a,b,c,d\n0,1,2,3,4\n-1,1,2,3,4\n")
    _fails(cli, *train, negative, message="label -1 is out of range")
    images = data.train_images[:, 0]
    np.savez(
        tmp_path / "far.npz", x_train=images, y_train=data.train_labels, x_test=images, y_test=data.train_labels + 5
    )
    _fails(cli, *train, tmp_path / "far.npz", message="test label 7 is out of range: the training labels are 0..2")
    np.savez(tmp_path / "partial.npz", x_train=images, y_train=data.train_labels)
    _fails(cli, *train, tmp_path / "partial.npz", message="no array x_test, y_test")
    _fails(cli, *train, tmp_path / "missing", message="no such file or folder")


def test_without_pillow_an_image_folder_names_the_pip_command(split_folder, monkeypatch):
    folder, _ = split_folder
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match=r"pip install 'numbacnn\[images\]'"):
        load_own(folder, image_size=28)


@pytest.mark.parametrize("model", ["lenet5", "resnet8"])
def test_each_layout_trains_from_the_cli_and_predict_and_evaluate_name_the_classes(cli, tmp_path, split_folder, model):
    folder, data = split_folder
    images = data.train_images[:, 0]
    np.savez(tmp_path / "d.npz", x_train=images, y_train=data.train_labels, x_test=data.test_images[:, 0],
             y_test=data.test_labels)  # fmt: skip
    train_csv = write_csv(tmp_path / "d.csv", data.train_images, data.train_labels)
    for layout in (folder, tmp_path / "d.npz", train_csv):
        out = tmp_path / f"run-{model}-{layout.name}"
        result = cli("train", model, "--dataset", layout, "--epochs", 1, "--batch-size", 16, "--out", out, "--quiet",
                     "--no-plots", "--json")  # fmt: skip
        assert result.exit_code == 0, result.output
        history = json.loads(result.output.strip().splitlines()[-1])["history"]
        assert np.isfinite(history[-1]["train_loss"]) and 0 <= history[-1]["val_acc"] <= 1
    checkpoint = tmp_path / f"run-{model}-split" / "checkpoint.npz"
    result = cli("evaluate", checkpoint)
    assert result.exit_code == 0, result.output
    assert "class0" in result.output and "class2" in result.output
    result = cli("predict", checkpoint, folder / "test" / "class1", "--top-k", 2, "--csv", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 6 and all(line.rsplit(": ", 1)[1].count("class") == 2 for line in lines)
    rows = list(csv.reader(open(tmp_path / "p.csv")))
    assert rows[0] == ["path", "class", "probability"] and len(rows) == 1 + 6 * 2
    assert rows[1][1] in data.classes and 0 <= float(rows[1][2]) <= 1


def test_resume_and_evaluate_keep_the_preprocessing(cli, tmp_path, flat_folder):
    folder, _ = flat_folder
    out = tmp_path / "run"
    args = ("train", "lenet5", "--dataset", folder, "--image-size", 32, "--val-split", 0.2, "--quiet", "--no-plots")
    assert cli(*args, "--epochs", 1, "--out", out).exit_code == 0
    config = nc.formats.checkpoint.load_checkpoint(out / "checkpoint.npz")[3]["config"]
    assert config["image_size"] == 32 and config["channels"] == 1 and config["val_split"] == 0.2
    result = cli("train", "--resume", out / "checkpoint.npz", "--epochs", 2, "--quiet", "--no-plots")
    assert result.exit_code == 0, result.output
    refused = cli("train", "--resume", out / "checkpoint.npz", "--image-size", 28, "--epochs", 3)
    assert refused.exit_code == 2 and "--image-size 28 (the checkpoint has 32)" in refused.output
    other = tmp_path / "other"
    (other / "dogs").mkdir(parents=True)
    for name in "abcdefghij":
        PIL.fromarray(np.zeros((9, 9), np.uint8)).save(other / "dogs" / f"{name}.png")
    _fails(cli, "evaluate", out / "checkpoint.npz", "--dataset", other, message="differ from those the checkpoint")


@pytest.mark.parametrize("layout", ["folder", "npz", "csv"])
@pytest.mark.parametrize("model_name", ["lenet5", "resnet8"])
def test_training_from_python_on_each_layout(split_folder, tmp_path, layout, model_name):
    folder, source = split_folder
    if layout == "npz":
        path = tmp_path / "d.npz"
        np.savez(path, x_train=source.train_images, y_train=source.train_labels, x_test=source.test_images,
                 y_test=source.test_labels)  # fmt: skip
    elif layout == "csv":
        path = write_csv(tmp_path / "d.csv", source.train_images, source.train_labels)
    data = load_own(folder if layout == "folder" else path, image_size=28)
    model = nc.models.create(model_name, data.image_shape[0], data.num_classes, 28)
    optimizer = nc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nc.losses.CrossEntropyLoss()
    loader = nc.data.DataLoader(data.train_images, data.train_labels, batch_size=16, mean=data.mean, std=data.std)
    epoch_losses = []
    for epoch in range(5):
        losses = []
        for x, y in loader.epoch(epoch):
            optimizer.zero_grad()
            losses.append(criterion.forward(model(x), y))
            model.backward(criterion.backward())
            optimizer.step()
        epoch_losses.append(np.mean(losses))
    assert epoch_losses[-1] < epoch_losses[0], epoch_losses


def test_a_script_without_a_main_guard_decodes_in_worker_processes(flat_folder, tmp_path):
    """Workers are forked: a start method that re-runs the caller's main module would run this
    unguarded script again in every worker and fail."""
    import subprocess

    folder, _ = flat_folder
    script = tmp_path / "plain.py"
    script.write_text(
        "import os\n"
        "from numbacnn.data import decode, decoded_cache, load_own\n"
        f"decoded_cache.cache_root = lambda: __import__('pathlib').Path({str(tmp_path / 'c')!r})\n"
        "decode.PARALLEL_MIN_FILES, decode.CHUNK_FILES = 1, 9\n"
        "os.cpu_count = lambda: 2\n"
        f"data = load_own({str(folder)!r}, image_size=16)\n"
        "print(len(data.train_images) + len(data.test_images))\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "60"


def test_predict_without_pillow_reads_images_of_the_model_size_and_names_the_extra(cli, tmp_path, monkeypatch):
    from numbacnn.cli import common

    data = small_set(size=28)
    nc.data.export_images(data, tmp_path / "set")
    out = tmp_path / "run"
    assert cli("train", "lenet5", "--dataset", tmp_path / "set", "--epochs", 1, "--out", out, "--quiet").exit_code == 0
    monkeypatch.setattr(common, "_pillow_installed", lambda: False)
    image = sorted((tmp_path / "set" / "test" / "class0").iterdir())[0]
    result = cli("predict", out / "checkpoint.npz", image)
    assert result.exit_code == 0 and ": class" in result.output, result.output
    PIL.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "small.png")
    _fails(cli, "predict", out / "checkpoint.npz", tmp_path / "small.png", message="pip install 'numbacnn[images]'")
