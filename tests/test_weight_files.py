"""Weight files from anywhere: every malformed checkpoint (.npz) or safetensors file is one
CheckpointError (exit 4 and one ``error:`` line from the CLI), never a traceback, an allocation
larger than the file, or wrong weights loaded in silence. The cases of the issue one by one, then a
seeded fuzz over both formats."""

import json
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.errors import CheckpointError
from numbacnn.formats.checkpoint import load_checkpoint, save_checkpoint
from numbacnn.formats.safetensors import load_safetensors, load_state, save_safetensors


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("run")
    r = cli("train", "lenet5", "--dataset", "synthetic", "--synthetic-size", 256, "--epochs", 1, "--out", out)
    assert r.exit_code == 0, r.output
    return out / "checkpoint.npz"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "lenet5.safetensors"
    nc.models.lenet5().save(path)
    return path


def _one_error_line(r, code=4):
    lines = r.output.strip().splitlines()
    assert r.exit_code == code, r.output
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


# ------------------------------------------------------------------ .npz: the zip directory
def _central_entries(blob):
    """Offsets of the central-directory file headers (signature PK\\1\\2) in a zip's bytes."""
    offsets, start = [], 0
    while (i := blob.find(b"PK\x01\x02", start)) >= 0:
        offsets.append(i)
        start = i + 4
    return offsets


def _with_flag(blob, bit):
    """Every member marked with a general-purpose flag bit, in the local and central headers."""
    out = bytearray(blob)
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (i := out.find(signature, start)) >= 0:
            (flags,) = struct.unpack_from("<H", out, i + flag_at)
            struct.pack_into("<H", out, i + flag_at, flags | bit)
            start = i + 4
    return bytes(out)


@pytest.mark.parametrize("bit, words", [(0x1, "encrypted"), (0x20, "patched")])
def test_npz_members_with_unsupported_zip_flags(bit, words, checkpoint, tmp_path, cli):
    path = tmp_path / "flagged.npz"
    path.write_bytes(_with_flag(checkpoint.read_bytes(), bit))
    assert words in _one_error_line(cli("evaluate", path))


def test_an_npy_header_that_claims_64_gib_allocates_nothing_of_the_kind(tmp_path, cli):
    path = tmp_path / "huge.npz"
    save_checkpoint(path, {"0.weight": np.zeros(48 * 1024, np.float32)}, meta={"config": {}})
    blob = bytearray(path.read_bytes())
    old = b"'shape': (49152,)"
    new = b"'shape': (17179869184,)"  # 2^34 float32: 64 GiB, over 192 KB of data
    at = blob.find(old)
    assert at > 0
    # Same header length: the spaces that pad the header absorb the longer text.
    end = blob.find(b"\n", at)
    blob[at:end] = (new + blob[at + len(old) : end]).replace(b" " * (len(new) - len(old)), b"", 1)
    path.write_bytes(bytes(blob))
    tracemalloc.start()
    with pytest.raises(CheckpointError, match=r"claims shape \(17179869184,\)"):
        load_checkpoint(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * len(blob) + (1 << 20)
    assert "claims shape" in _one_error_line(cli("evaluate", path))


def test_random_bytes_are_not_answered_with_numpys_advice(tmp_path, cli):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    line = _one_error_line(cli("evaluate", path))
    assert "not a readable numbacnn checkpoint" in line and "unsafe" not in line


# ------------------------------------------------------------------ safetensors headers
def _safetensors(header, data=b""):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


TWO = np.arange(8, dtype=np.float32).tobytes()  # 32 bytes: two tensors of 4 floats


@pytest.mark.parametrize(
    "blob, match",
    [
        (_safetensors(b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1e400]}}', TWO[:16]), "malformed"),
        (_safetensors({"__metadata__": ["x"], "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, TWO[:16]),
         "__metadata__"),
        (_safetensors({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                       "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, TWO[:24]), "overlaps"),
        (_safetensors(b'{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, '
                      b'"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}', TWO[:16]), "more than once"),
        (_safetensors({"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 32]}}, TWO), "gap"),
        (_safetensors({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, TWO), "holds 32"),
        (_safetensors({"a": {"dtype": "F32", "shape": [4, 2**40], "data_offsets": [0, 16]}}, TWO[:16]), "span 16"),
        (_safetensors({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, TWO[:4]), "malformed"),
    ],
    ids=["offset 1e400", "metadata list", "overlap", "duplicate key", "gap", "trailing bytes", "lying shape", "bool"],
)  # fmt: skip
def test_malformed_safetensors_headers(blob, match, tmp_path, cli):
    path = tmp_path / "w.safetensors"
    path.write_bytes(blob)
    with pytest.raises(CheckpointError, match=match):
        load_safetensors(path)
    r = cli("train", "lenet5", "--dataset", "synthetic", "--epochs", 1, "--init-from", path, "--out", tmp_path / "r")
    assert match.split()[0] in _one_error_line(r)


# ------------------------------------------------------------------ paths and non-finite weights
@pytest.mark.parametrize("where", ["missing", "directory"])
def test_a_missing_file_or_a_directory_is_exit_4_for_every_command(where, tmp_path, cli):
    path = tmp_path / "missing.npz"
    if where == "directory":
        path.mkdir()
    expected = "not found" if where == "missing" else "is a directory"
    commands = [
        ("evaluate", path),
        ("predict", path, tmp_path),
        ("export", path, tmp_path / "m.onnx"),
        ("attack", path),
        ("visualize", path, "--filters"),
        ("train", "lenet5", "--dataset", "synthetic", "--init-from", path, "--out", tmp_path / "a"),
        ("train", "lenet5", "--resume", path),
    ]
    for command in commands:
        assert expected in _one_error_line(cli(*command)), command


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_are_refused_wherever_they_are_loaded(value, checkpoint, weights, tmp_path, cli):
    model, optim, sched, meta = load_checkpoint(checkpoint)
    model = dict(model)
    model["3.weight"] = model["3.weight"].copy()
    model["3.weight"][0, 0, 0, 0] = value
    bad = tmp_path / "bad.npz"
    save_checkpoint(bad, model, optim, sched, meta)
    tensors = load_safetensors(weights)[0]
    tensors["0.bias"] = tensors["0.bias"].copy()
    tensors["0.bias"][1] = value
    bad_weights = tmp_path / "bad.safetensors"
    save_safetensors(bad_weights, tensors)
    commands = [
        ("evaluate", bad),
        ("predict", bad, tmp_path / "x.npy"),
        ("export", bad, tmp_path / "m.safetensors"),
        ("attack", bad),
        ("visualize", bad, "--filters"),
        ("train", "lenet5", "--dataset", "synthetic", "--init-from", bad, "--out", tmp_path / "a"),
        ("train", "lenet5", "--dataset", "synthetic", "--init-from", bad_weights, "--out", tmp_path / "b"),
    ]
    np.save(tmp_path / "x.npy", np.zeros((28, 28), np.uint8))
    with _no_warnings():
        for command in commands:
            line = _one_error_line(cli(*command))
            assert "NaN or infinite" in line and ("'3.weight'" in line or "'0.bias'" in line), command
    with pytest.raises(CheckpointError, match="'0.bias'"):
        nc.models.lenet5().load(bad_weights)


class _no_warnings:
    """Fails on any warning raised inside (a raw numpy RuntimeWarning must not leak)."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self._seen = self._catch.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert [str(w.message) for w in self._seen] == []


# ------------------------------------------------------------------ the fuzz
def _header_regions(blob, fmt):
    """Where a format keeps its structure: a zip's first and last KB (the first member's local
    header and .npy header; the central directory), a safetensors file's length and JSON header.
    (Flipped bits in safetensors' tensor bytes load as other values: the format has no checksum.
    The zip's CRC catches them in an .npz.)"""
    if fmt == "npz":
        return [(0, 1024), (len(blob) - 1024, len(blob))]
    return [(0, 8 + struct.unpack("<Q", blob[:8])[0])]


def _mutations(blob, rng, count, regions):
    """Seeded damage: truncations, bit flips in the structural ``regions``, lying 2-, 4- and 8-byte
    size fields there, and bytes appended."""
    n = len(blob)
    for _ in range(count):
        kind = rng.integers(0, 4)
        out = bytearray(blob)
        lo, hi = regions[rng.integers(0, len(regions))]
        if kind == 0:
            out = out[: rng.integers(0, n)]
        elif kind == 1:
            for _ in range(rng.integers(1, 4)):
                at = rng.integers(lo, hi)
                out[at] ^= 1 << rng.integers(0, 8)
        elif kind == 2:
            width = int(rng.choice([2, 4, 8]))
            at = int(rng.integers(lo, max(lo + 1, hi - width)))
            lie = int(rng.choice([0, 1, 2**31 - 1, 2**32 - 1, 2**40, int(rng.integers(0, 2**16))]))
            out[at : at + width] = (lie % (1 << (8 * width))).to_bytes(width, "little")
        else:
            out += rng.bytes(int(rng.integers(1, 64)))
        yield bytes(out)


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_fuzz_every_damaged_file_loads_right_or_is_one_checkpoint_error(fmt, checkpoint, weights, tmp_path):
    original = checkpoint if fmt == "npz" else weights
    blob = original.read_bytes()
    expected = load_state(original)
    rng = np.random.default_rng(20261206)
    path = tmp_path / f"fuzzed.{fmt}"
    outcomes = {"loaded": 0, "refused": 0}
    for case, damaged in enumerate(_mutations(blob, rng, 300, _header_regions(blob, fmt))):
        path.write_bytes(damaged)
        tracemalloc.start()
        started = time.perf_counter()
        try:
            state = load_state(path)
        except CheckpointError:
            outcomes["refused"] += 1
        else:
            outcomes["loaded"] += 1
            if state.keys() == expected.keys():  # loaded right: the same shapes and values
                for k in expected:
                    np.testing.assert_array_equal(state[k], expected[k], err_msg=f"case {case}, {k}")
            else:  # a damaged name: the values are the original ones, and a model refuses the file
                assert sorted(v.tobytes() for v in state.values()) == sorted(v.tobytes() for v in expected.values())
                with pytest.raises((KeyError, ValueError)):
                    nc.models.lenet5().load(path)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < 4 * len(blob) + (1 << 20), (case, peak)
        assert time.perf_counter() - started < 5, case
    assert outcomes["refused"] > 200, outcomes  # the damage is real, and found


def test_fuzzed_files_through_the_cli_end_in_0_or_4_with_one_error_line(checkpoint, tmp_path, cli):
    rng = np.random.default_rng(7)
    path = tmp_path / "fuzzed.npz"
    blob = checkpoint.read_bytes()
    for damaged in _mutations(blob, rng, 12, _header_regions(blob, "npz")):
        path.write_bytes(damaged)
        r = cli("export", path, tmp_path / "o.safetensors")
        if r.exit_code != 0:
            _one_error_line(r)


def test_zipfile_directory_of_a_real_checkpoint_is_what_the_checks_expect(checkpoint):
    """Guard for the flag tests above: numpy writes stored members, flags clear."""
    with zipfile.ZipFile(checkpoint) as archive:
        assert all(i.compress_type == zipfile.ZIP_STORED and i.flag_bits & 0x61 == 0 for i in archive.infolist())
    assert len(_central_entries(checkpoint.read_bytes())) == len(zipfile.ZipFile(checkpoint).infolist())
