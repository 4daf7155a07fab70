"""safetensors weight files: numbacnn writes and reads the format itself; the ``safetensors``
package (where installed) reads what numbacnn writes and numbacnn reads what it writes."""

import json
import struct

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.errors import CheckpointError
from numbacnn.formats.safetensors import load_safetensors, save_safetensors


def _same_state(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_resnet_round_trip_keeps_keys_shapes_and_dtypes(tmp_path, rng):
    model = nc.models.resnet(8, 1, 10)
    model.forward(rng.standard_normal((4, 1, 28, 28)).astype(np.float32))  # running stats, counter 1
    path = model.save(tmp_path / "r8.safetensors")
    fresh = nc.models.resnet(8, 1, 10).load(path)
    _same_state(fresh.state_dict(), model.state_dict())
    assert fresh.state_dict()["bn1.num_batches_tracked"].shape == ()  # 0-d stays 0-d


def test_float64_model_is_written_as_float64(tmp_path):
    model = nc.models.lenet5().double()
    model.save(tmp_path / "l.safetensors")
    tensors, metadata = load_safetensors(tmp_path / "l.safetensors")
    assert {t.dtype for t in tensors.values()} == {np.dtype(np.float64)}
    assert metadata["format"] == "pt"


def test_non_contiguous_arrays_are_written_by_value(tmp_path, rng):
    a = rng.standard_normal((6, 8)).astype(np.float32)
    views = {"transposed": a.T, "strided": a[::2, 1::3], "fortran": np.asfortranarray(a)}
    save_safetensors(tmp_path / "v.safetensors", views)
    back, _ = load_safetensors(tmp_path / "v.safetensors")
    for k, v in views.items():
        np.testing.assert_array_equal(back[k], v)


def test_header_is_aligned_and_offsets_contiguous(tmp_path):
    save_safetensors(tmp_path / "a.safetensors", {"x": np.arange(3, dtype=np.int64), "y": np.ones(5, np.float32)})
    blob = (tmp_path / "a.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", blob[:8])
    assert size % 8 == 0
    header = json.loads(blob[8 : 8 + size])
    assert header["x"] == {"dtype": "I64", "shape": [3], "data_offsets": [0, 24]}
    assert header["y"]["data_offsets"] == [24, 44] and len(blob) == 8 + size + 44


def test_mis_shaped_and_missing_keys_name_the_key(tmp_path):
    nc.models.lenet5(num_classes=5).save(tmp_path / "five.safetensors")
    with pytest.raises(ValueError, match=r"five.safetensors: .*'11.weight' has shape \(5, 84\)"):
        nc.models.lenet5(num_classes=10).load(tmp_path / "five.safetensors")
    tensors, _ = load_safetensors(tmp_path / "five.safetensors")
    del tensors["0.bias"]
    save_safetensors(tmp_path / "less.safetensors", tensors)
    with pytest.raises(KeyError, match="missing keys: 0.bias"):
        nc.models.lenet5(num_classes=5).load(tmp_path / "less.safetensors")
    nc.models.lenet5(num_classes=5).load(tmp_path / "less.safetensors", strict=False)


def test_corrupt_and_truncated_files_are_checkpoint_errors(tmp_path):
    nc.models.lenet5().save(tmp_path / "ok.safetensors")
    blob = (tmp_path / "ok.safetensors").read_bytes()
    cases = {
        "tiny": (blob[:5], "only 5 bytes"),
        "truncated": (blob[:-100], "truncated or corrupt"),
        "huge_header": (struct.pack("<Q", 1 << 40) + blob[8:], "header of 1099511627776 bytes"),
        "not_json": (blob[:8] + b"{" * (len(blob) - 8), "corrupt safetensors header"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / f"{name}.safetensors").write_bytes(data)
        with pytest.raises(CheckpointError, match=message):
            load_safetensors(tmp_path / f"{name}.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_safetensors(tmp_path / "absent.safetensors")


def test_wrong_suffix_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.safetensors"):
        nc.models.lenet5().save(tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"\.safetensors weights file or a \.npz"):
        nc.models.lenet5().load(tmp_path / "w.pt")


def test_load_reads_a_training_checkpoint(tmp_path):
    from numbacnn.formats.checkpoint import save_checkpoint

    model = nc.models.lenet5()
    save_checkpoint(tmp_path / "c.npz", model.state_dict(keep_nonpersistent=True), meta={"config": {}})
    _same_state(nc.models.lenet5().load(tmp_path / "c.npz").state_dict(), model.state_dict())


def test_the_safetensors_package_agrees_both_ways(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    model = nc.models.resnet(8, 1, 10)
    model.save(tmp_path / "ours.safetensors")
    _same_state(dict(st.load_file(str(tmp_path / "ours.safetensors"))), model.state_dict())
    st.save_file(model.state_dict(), str(tmp_path / "theirs.safetensors"))
    _same_state(nc.models.resnet(8, 1, 10).load(tmp_path / "theirs.safetensors").state_dict(), model.state_dict())
