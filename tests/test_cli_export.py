"""``numbacnn export``: a trained checkpoint to .safetensors (always) and .onnx (with the extra)."""

import numpy as np
import pytest

import numbacnn as nc

pytestmark = pytest.mark.usefixtures("quick_start_on")  # as a user has it


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("export") / "run"
    r = cli("train", "lenet5", "--dataset", "synthetic", "--epochs", 1, "--synthetic-size", 64, "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    return out / "checkpoint.npz"


def _trained_model(checkpoint):
    return nc.models.lenet5().load(checkpoint).eval()


def test_export_safetensors_holds_the_trained_weights(checkpoint, tmp_path, cli):
    r = cli("export", checkpoint, tmp_path / "w.safetensors")
    assert r.exit_code == 0, r.output
    assert "PyTorch key names" in r.output
    loaded = nc.models.lenet5().load(tmp_path / "w.safetensors").state_dict()
    for k, v in _trained_model(checkpoint).state_dict().items():
        np.testing.assert_array_equal(loaded[k], v)


def test_export_onnx_runs_in_onnx_runtime(checkpoint, tmp_path, rng, cli):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    r = cli("export", checkpoint, tmp_path / "m.onnx")
    assert r.exit_code == 0, r.output
    assert "opset 17" in r.output and "(batch, 1, 28, 28)" in r.output
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, _trained_model(checkpoint).forward(x), atol=1e-4)


def test_export_refuses_unknown_suffix_and_bad_checkpoint(checkpoint, tmp_path, cli):
    r = cli("export", checkpoint, tmp_path / "m.pt")
    assert r.exit_code == 2 and ".onnx or .safetensors" in r.output
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    r = cli("export", tmp_path / "bad.npz", tmp_path / "m.onnx")
    assert r.exit_code == 4 and "bad.npz" in r.output


def test_missing_onnx_extra_names_the_pip_command(checkpoint, tmp_path, monkeypatch, cli):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    r = cli("export", checkpoint, tmp_path / "m.onnx")
    assert r.exit_code == 2 and "pip install 'numbacnn[onnx]'" in r.output
    assert not (tmp_path / "m.onnx").exists()
