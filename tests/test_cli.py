"""The numbacnn command line, run in-process with click's CliRunner, with quick start on as a user
has it (every kernel signature starts on its NumPy twin)."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("quick_start_on")


def test_train_synthetic_one_epoch_then_evaluate_and_predict(tmp_path, cli):
    out = tmp_path / "run"
    r = cli(
        "train",
        "lenet5",
        "--dataset",
        "synthetic",
        "--epochs",
        1,
        "--synthetic-size",
        256,
        "--out",
        out,
        "--quiet",
        "--json",
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.output.strip().splitlines()[-1])
    assert result["status"] == "finished" and len(result["history"]) == 1
    assert 0 < result["first_step_s"] < 3600  # measured from the process start (seconds)
    ckpt = out / "checkpoint.npz"
    assert ckpt.is_file() and (out / "log.jsonl").is_file()

    r = cli("evaluate", ckpt, "--json")
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)  # stderr says the averaged weights are used (LeNet-5's default --ema)
    assert ev["samples"] == 512 and 0 <= ev["top1"] <= ev["top5"] <= 1
    assert np.array(ev["confusion"]).sum() == 512

    img = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)
    np.save(tmp_path / "img.npy", img)
    pgm = tmp_path / "img.pgm"
    pgm.write_bytes(b"P5\n28 28\n255\n" + img.tobytes())
    r = cli("predict", ckpt, tmp_path / "img.npy", pgm, "--top", 2, "--json")
    assert r.exit_code == 0, r.output
    preds = json.loads(r.stdout)
    assert len(preds) == 2 and len(preds[0]["top"]) == 2
    # Same pixels, two formats: the decoded images are equal, and so are the predictions up to the
    # rounding of the sample's position in the batch (OpenBLAS blocks the GEMM rows differently).
    from numbacnn.data.images import read_image

    np.testing.assert_array_equal(read_image(tmp_path / "img.npy", (1, 28, 28)), read_image(pgm, (1, 28, 28)))
    assert [t["index"] for t in preds[0]["top"]] == [t["index"] for t in preds[1]["top"]]
    np.testing.assert_allclose(
        [t["probability"] for t in preds[0]["top"]], [t["probability"] for t in preds[1]["top"]], rtol=1e-6
    )
    assert preds[0]["top"][0]["probability"] >= preds[0]["top"][1]["probability"]


def test_summary_info_datasets(cli):
    r = cli("summary", "lenet5", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["total_params"] == 61706
    assert "layer3.2.conv2" in cli("summary", "resnet20").output
    info = json.loads(cli("info", "--json").output)
    assert info["cpu_threads"] >= 1 and "cuda_devices" in info
    names = [d["name"] for d in json.loads(cli("datasets", "--json").output)]
    assert names == ["fashion-mnist", "mnist", "cifar10", "synthetic"]


def test_errors_have_meaningful_exit_codes(tmp_path, cli):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    r = cli("evaluate", bad)
    assert r.exit_code == 4 and "not a readable numbacnn checkpoint" in r.output
    r = cli("train", "lenet7", "--dataset", "synthetic")
    assert r.exit_code == 2 and "unknown model" in r.output
    # No MNIST anywhere, and a mirror that refuses connections: exit 3 with the how-to-get-it message.
    (tmp_path / "empty").mkdir()
    r = cli(
        "train",
        "lenet5",
        "--dataset",
        "mnist",
        "--data-dir",
        tmp_path / "empty",
        "--out",
        tmp_path / "o",
        env={"NUMBACNN_MIRROR": "http://127.0.0.1:9/", "XDG_CACHE_HOME": str(tmp_path / "cache"), "NUMBACNN_DATA": ""},
    )
    assert r.exit_code == 3 and "not found" in r.output and "Download failed" in r.output
    r = cli("summary", "lenet5", "--input-shape", "1,28")
    assert r.exit_code == 2


def test_help_has_examples(cli):
    for cmd in ("train", "evaluate", "predict", "summary"):
        assert "Examples" in cli(cmd, "--help").output


def test_compile_fills_the_cache_and_info_reports_it(cli):
    r = cli("compile", "lenet5")
    assert r.exit_code == 0 and "lenet5: kernels ready" in r.output
    info = json.loads(cli("info", "--json").output)
    done, total = (int(v) for v in info["jit_cache_warm"].split()[:3:2])
    assert 0 < done <= total and info["jit_cache"]
    # `compile` records what it compiled, so that quick start knows those signatures warm.
    assert info["quick_start"].startswith("on") and int(info["quick_start"].split("(")[1].split()[0]) > 0
    assert cli("compile", "vgg99").exit_code == 2
