"""Nothing lost, nothing silent: each test reproduces a defect found by trying bad inputs and
faults as a careful user would (divergence that looked healthy, runs that overwrote each other,
hangs, late failures, ignored options, tracebacks instead of exit codes, signals)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.errors import RunFolderError, TrainingDiverged
from numbacnn.formats.checkpoint import load_checkpoint, save_checkpoint
from numbacnn.training import trainer as train_module
from numbacnn.training.config import build_trainer, load_data, resolve_config
from numbacnn.training.resuming import usable_device
from numbacnn.training.runs import RunFolder

SMALL = ["--dataset", "synthetic", "--synthetic-size", 64, "--quiet"]


def trainer_for(tmp_path, name="run", **overrides):
    config = resolve_config("lenet5", **dict(dict(dataset="synthetic", synthetic_size=96, batch_size=32), **overrides))
    return build_trainer(config, load_data(config), out_dir=str(tmp_path / name), progress=False)


def finite_checkpoint(path):
    model, optim, _, _ = load_checkpoint(path)
    return all(np.isfinite(v).all() for v in list(model.values()) + list(optim.values()) if v.dtype.kind == "f")


# ------------------------------------------------------------------ 1. NaN is never swallowed
@pytest.mark.parametrize("option,value", [("--lr", "inf"), ("--momentum", "nan"), ("--weight-decay", "inf")])
def test_non_finite_hyperparameters_are_refused_up_front(tmp_path, option, value, cli):
    r = cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", tmp_path / "o", option, value)
    assert r.exit_code == 2 and "not a finite number" in r.output
    assert not (tmp_path / "o" / "checkpoint.npz").exists()
    with pytest.raises(ValueError, match="finite"):
        nc.optim.SGD(nc.layers.Linear(2, 2).parameters(), lr=float(value) if option == "--lr" else 0.1,
                     momentum=float(value) if option == "--momentum" else 0.0,
                     weight_decay=float(value) if option == "--weight-decay" else 0.0)  # fmt: skip


def test_a_huge_learning_rate_diverges_with_exit_5_and_no_checkpoint(tmp_path, cli):
    r = cli("train", "lenet5", *SMALL, "--epochs", 2, "--out", tmp_path / "o", "--lr", "1e30")
    assert r.exit_code == 5, r.output
    assert "no good checkpoint was written" in r.output
    assert not (tmp_path / "o" / "checkpoint.npz").exists()


def test_divergence_in_epoch_two_names_the_finite_epoch_one_checkpoint(tmp_path):
    trainer = trainer_for(tmp_path)
    assert trainer.fit(1) == "finished"
    good = open(trainer.checkpoint_path, "rb").read()
    trainer.optimizer.lr = float("inf")  # the next step turns every weight into inf/NaN
    with pytest.raises(TrainingDiverged, match=f"last good checkpoint: {trainer.checkpoint_path}"):
        trainer.fit(2)
    assert open(trainer.checkpoint_path, "rb").read() == good and finite_checkpoint(trainer.checkpoint_path)


def test_a_non_finite_checkpoint_is_never_written(tmp_path):
    trainer = trainer_for(tmp_path)
    trainer.optimizer.storage.data[3] = np.nan
    with pytest.raises(TrainingDiverged, match="parameters or optimizer state became NaN"):
        trainer.save()
    assert not os.path.exists(trainer.checkpoint_path)


def test_a_nan_validation_loss_is_divergence(tmp_path, monkeypatch):
    trainer = trainer_for(tmp_path)
    real = train_module.evaluate
    monkeypatch.setattr(train_module, "evaluate", lambda *a, **k: dict(real(*a, **k), loss=float("nan")))
    with pytest.raises(TrainingDiverged, match="validation loss became nan"):
        trainer.fit(1)
    assert not os.path.exists(trainer.checkpoint_path)


# ------------------------------------------------------------------ 2. runs never overwrite each other
def test_a_second_default_run_gets_a_new_numbered_folder(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    assert cli("train", "lenet5", *SMALL, "--epochs", 1).exit_code == 0
    first = (tmp_path / "runs" / "lenet5" / "checkpoint.npz").read_bytes()
    r = cli("train", "lenet5", *SMALL, "--epochs", 1, "--seed", 5, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.splitlines()[-1])["run_folder"] == os.path.join("runs", "lenet5-2")
    assert (tmp_path / "runs" / "lenet5" / "checkpoint.npz").read_bytes() == first
    rows = [json.loads(line) for line in open(tmp_path / "runs" / "lenet5" / "log.jsonl")]
    assert [row["epoch"] for row in rows] == [1]


def test_an_explicit_folder_holding_a_run_is_refused_unless_forced(tmp_path, cli):
    out = tmp_path / "o"
    assert cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", out).exit_code == 0
    before = (out / "checkpoint.npz").read_bytes()
    r = cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", out)
    assert r.exit_code == 2 and "--resume" in r.output and "--force" in r.output
    assert (out / "checkpoint.npz").read_bytes() == before
    r = cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", out, "--force", "--seed", 9)
    assert r.exit_code == 0 and (out / "checkpoint.npz").read_bytes() != before
    assert len(open(out / "log.jsonl").readlines()) == 1


def test_a_live_run_locks_its_folder(tmp_path, cli):
    with RunFolder(str(tmp_path / "o")):
        r = cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", tmp_path / "o")
        assert r.exit_code == 2 and f"(pid {os.getpid()}) is using" in r.output
        with pytest.raises(RunFolderError, match="is using"):
            RunFolder(str(tmp_path / "o"), fresh=False)
    RunFolder(str(tmp_path / "o")).close()  # released with its holder


# ------------------------------------------------------------------ 3. no hang on bad images
def test_predict_on_empty_and_header_only_images_fails_fast(tmp_path, cli):
    out = tmp_path / "o"
    assert cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", out).exit_code == 0
    for name, payload in (
        ("empty.pgm", b""),
        ("header.pgm", b"P5\n28 28\n255\n"),
        ("big.pgm", b"P5 20000 20000 255\n"),
    ):
        (tmp_path / name).write_bytes(payload)
        start = time.perf_counter()
        r = cli("predict", out / "checkpoint.npz", tmp_path / name)
        assert r.exit_code == 3 and r.stderr.splitlines()[-1].startswith("error: ") and "Traceback" not in r.output
        assert time.perf_counter() - start < 10


# ------------------------------------------------------------------ 4. unwritable run folders, found at once
@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_an_unwritable_out_is_refused_before_training(tmp_path, where, cli):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "run" if where == "under_a_file" else "/proc/numbacnn-cannot-be-here"
    start = time.perf_counter()
    r = cli("train", "lenet5", *SMALL, "--epochs", 5, "--out", out)
    assert r.exit_code == 2 and "run folder" in r.output and "Traceback" not in r.output
    assert time.perf_counter() - start < 30


def test_the_trainer_checks_its_folder_before_the_first_step(tmp_path):
    (tmp_path / "afile").write_text("x")
    trainer = trainer_for(tmp_path, name="afile/run")
    with pytest.raises(RunFolderError, match="cannot write"):
        trainer.fit(1)
    assert trainer.first_step_done_at is None


# ------------------------------------------------------------------ 5. resume honours or refuses options
def test_resume_refuses_options_that_would_break_exactness(tmp_path, cli):
    out = tmp_path / "o"
    assert cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", out).exit_code == 0
    ckpt = out / "checkpoint.npz"
    r = cli("train", "--resume", ckpt, "--lr", "0.5", "--batch-size", 8)
    assert r.exit_code == 2 and "--lr 0.5" in r.output and "--batch-size 8" in r.output
    r = cli("train", "--resume", ckpt, "--epochs", 2, "--device", "cpu", "--quiet")
    assert r.exit_code == 0, r.output
    assert load_checkpoint(ckpt)[3]["epoch"] == 2


def test_a_cuda_checkpoint_resumes_and_evaluates_on_the_cpu(tmp_path, monkeypatch, cli):
    out = tmp_path / "o"
    assert cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", out).exit_code == 0
    model, optim, sched, meta = load_checkpoint(out / "checkpoint.npz")
    meta["config"]["device"] = "cuda"
    save_checkpoint(out / "checkpoint.npz", model, optim, sched, meta)
    r = cli("train", "--resume", out / "checkpoint.npz", "--epochs", 2, "--device", "cpu", "--quiet")
    assert r.exit_code == 0, r.output
    assert cli("evaluate", out / "checkpoint.npz", "--device", "cpu").exit_code == 0
    monkeypatch.setattr("numbacnn.runtime.devices.cuda_available", lambda: False)
    assert usable_device("cuda") == ("cpu", "the checkpoint was trained on CUDA; no GPU here, so it runs on the CPU")
    assert usable_device("cuda", "cuda")[0] == "cuda"


# ------------------------------------------------------------------ 6 and 7. corrupt data and checkpoints: exit codes
def test_corrupt_data_is_exit_3_before_training(tmp_path, cli):
    data = tmp_path / "data"
    data.mkdir()
    import gzip

    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        (data / f).write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 1, 0])))
    flipped = bytearray(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 1, 0])))
    flipped[12] ^= 0xFF
    (data / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(flipped))
    r = cli("train", "lenet5", "--dataset", "mnist", "--data-dir", data, "--out", tmp_path / "o")
    assert r.exit_code == 3 and r.output.startswith("error: ")


def _checkpoint_with(tmp_path, name, meta=None, arrays=None):
    path = tmp_path / name
    payload = {"model/0.weight": np.zeros(3, np.float32)}
    payload.update(arrays or {})
    payload["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **payload)
    return path


GOOD_CONFIG = dict(resolve_config("lenet5", dataset="synthetic"))


@pytest.mark.parametrize(
    "meta,arrays,match",
    [
        ([1, 2], None, "not a JSON object"),
        ({"format": 1}, None, "no run configuration"),
        ({"format": 1, "config": dict(GOOD_CONFIG, model="lenet9")}, None, "unknown model 'lenet9'"),
        ({"format": 1, "config": dict(GOOD_CONFIG, dataset="imagenet")}, None, "unknown data set"),
        ({"format": 1, "config": {"model": "lenet5", "dataset": "synthetic"}}, None, "lacks"),
        ({"format": 1, "config": GOOD_CONFIG, "epoch": -1}, None, "'epoch' is -1"),
        ({"format": 1, "config": GOOD_CONFIG, "running": {"loss": 0.0}}, None, "lack correct, seen, time"),
        ({"format": 1, "config": GOOD_CONFIG}, {"model/x": np.array(["a"])}, "not numbers"),
    ],
)
def test_checkpoints_with_bad_metadata_are_exit_4(tmp_path, meta, arrays, match, cli):
    path = _checkpoint_with(tmp_path, "c.npz", meta, arrays)
    r = cli("evaluate", path)
    assert r.exit_code == 4 and match in r.output, r.output
    r = cli("train", "--resume", path)
    assert r.exit_code == 4


def test_a_npy_file_or_a_batch_past_the_epoch_is_exit_4(tmp_path, cli):
    np.save(tmp_path / "a.npy", np.zeros(3))
    r = cli("evaluate", tmp_path / "a.npy")
    assert r.exit_code == 4 and "single array" in r.output
    out = tmp_path / "o"
    assert cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", out).exit_code == 0
    model, optim, sched, meta = load_checkpoint(out / "checkpoint.npz")
    save_checkpoint(out / "checkpoint.npz", model, optim, sched, dict(meta, batch=999))
    r = cli("train", "--resume", out / "checkpoint.npz", "--epochs", 2)
    assert r.exit_code == 4 and "past the end of an epoch" in r.output


# ------------------------------------------------------------------ 8. signals and logs
def test_ctrl_c_or_sigterm_before_the_first_step_exits_130_or_143(tmp_path, monkeypatch, cli):
    import numbacnn.training.config as config_module

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(config_module, "build_trainer", interrupted)
    r = cli("train", "lenet5", *SMALL, "--out", tmp_path / "a")
    assert r.exit_code == 130

    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)

    monkeypatch.setattr(config_module, "build_trainer", terminated)
    r = cli("train", "lenet5", *SMALL, "--out", tmp_path / "b")
    assert r.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_during_training_saves_and_exits_143(tmp_path):
    """A real process, as `timeout` or a batch scheduler would stop it. It is signalled once it
    says it has trained (its first epoch's line), not after a guessed delay."""
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "numbacnn", "train", "lenet5", "--dataset", "synthetic", "--synthetic-size",
           "2048", "--epochs", "50", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    for line in iter(proc.stderr.readline, ""):
        if line.startswith("epoch 1/50"):
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped at epoch" in err
    meta = load_checkpoint(out / "checkpoint.npz")[3]
    # The signal's checkpoint, not the end-of-epoch one (batch 0): it stopped inside an epoch.
    assert meta["epoch"] >= 1 and meta["batch"] >= 1


def test_ctrl_c_twice_aborts_with_130(tmp_path, monkeypatch, cli):
    from numbacnn.data import DataLoader

    original = DataLoader.epoch

    def two_interrupts(self, epoch, start_batch=0):
        for i, batch in enumerate(original(self, epoch, start_batch)):
            if self.shuffle and i == 0:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
            yield batch

    monkeypatch.setattr(DataLoader, "epoch", two_interrupts)
    r = cli("train", "lenet5", *SMALL, "--out", tmp_path / "o")
    assert r.exit_code == 130


def test_stale_temporaries_are_cleaned_and_the_log_matches_the_checkpoint(tmp_path, cli):
    out = tmp_path / "o"
    assert cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", out).exit_code == 0
    (out / ".ckpt-killed.npz").write_bytes(b"half a checkpoint")
    with open(out / "log.jsonl", "a") as f:  # a row the checkpoint does not have
        f.write('{"epoch": 2, "train_loss": NaN}\n')
    assert cli("train", "--resume", out / "checkpoint.npz", "--epochs", 2, "--quiet").exit_code == 0
    assert not (out / ".ckpt-killed.npz").exists()

    def strict(text):
        raise ValueError(f"non-strict JSON constant {text}")

    rows = [json.loads(line, parse_constant=strict) for line in open(out / "log.jsonl")]
    assert [row["epoch"] for row in rows] == [1, 2]


def test_checkpoint_every_n_steps(tmp_path, monkeypatch, cli):
    trainer = trainer_for(tmp_path)
    trainer.checkpoint_every = 2
    saved = []
    real_save = trainer.save
    monkeypatch.setattr(trainer, "save", lambda *a: saved.append((trainer.epoch, trainer.batch)) or real_save(*a))
    trainer.fit(1)  # 3 batches: a save after step 2, and one at the end of the epoch
    assert saved == [(0, 2), (1, 0)]
    r = cli("train", "lenet5", *SMALL, "--epochs", 1, "--out", tmp_path / "cli", "--checkpoint-every", 0)
    assert r.exit_code == 2


# ------------------------------------------------------------------ 9. smaller ones
def test_bad_seed_and_absurd_synthetic_size_are_usage_errors(tmp_path, cli):
    r = cli("train", "lenet5", *SMALL, "--seed", -1, "--out", tmp_path / "a")
    assert r.exit_code == 2
    r = cli("train", "lenet5", "--dataset", "synthetic", "--synthetic-size", 100_000_000, "--out", tmp_path / "b")
    assert r.exit_code == 2 and "GiB" in r.output


def test_a_data_dir_typo_is_exit_3(tmp_path, cli):
    r = cli("train", "lenet5", "--data-dir", tmp_path / "typo", "--out", tmp_path / "o")
    assert r.exit_code == 3 and "does not exist" in r.output


def test_load_state_dict_is_all_or_nothing():
    model = nc.models.lenet5()
    before = model.state_dict()
    bad = {k: v + 1 for k, v in before.items()}
    bad["11.bias"] = np.zeros(3, np.float32)  # the last key is mis-shaped
    with pytest.raises(ValueError, match="11.bias"):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_a_second_optimizer_is_named_when_it_breaks_the_first():
    model = nc.models.lenet5()
    first = nc.optim.SGD(model.parameters(), lr=0.1)
    nc.optim.Adam(model.parameters())
    with pytest.raises(RuntimeError, match="another optimizer was built on these parameters"):
        first.step()
