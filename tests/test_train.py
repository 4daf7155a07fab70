"""Training loop: exact resume, Ctrl-C, divergence, logs, evaluation metrics."""

import json
import os
import signal

import numpy as np
import pytest

from numbacnn.formats.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from numbacnn.training import metrics
from numbacnn.training.config import build_trainer, load_data, resolve_config
from numbacnn.training.trainer import TrainingDiverged

CONFIG = dict(dataset="synthetic", synthetic_size=96, batch_size=32, epochs=2, seed=3)


def make_trainer(tmp_path, name="run", **overrides):
    config = resolve_config("lenet5", **dict(CONFIG, **overrides))
    return build_trainer(config, load_data(config), out_dir=str(tmp_path / name), progress=False)


def weights(trainer):
    return trainer.model.state_dict()


def test_interrupted_and_resumed_run_ends_with_identical_weights(tmp_path):
    straight = make_trainer(tmp_path, "straight")
    assert straight.fit(2) == "finished"

    first = make_trainer(tmp_path, "resumed")
    assert first.fit(2, max_steps=4) == "interrupted"  # stops mid-epoch 2 (3 batches per epoch)
    second = make_trainer(tmp_path, "resumed")
    second.restore(*load_checkpoint(first.checkpoint_path))
    assert (second.epoch, second.batch) == (1, 1)
    assert second.fit(2) == "finished"
    for k, v in weights(straight).items():
        np.testing.assert_array_equal(weights(second)[k], v, err_msg=k)
    assert [h["train_loss"] for h in second.history] == [h["train_loss"] for h in straight.history]
    log = [json.loads(line) for line in open(tmp_path / "straight" / "log.jsonl")]
    assert [row["epoch"] for row in log] == [1, 2] and "val_acc" in log[-1]


def test_ctrl_c_saves_a_checkpoint_and_stops_cleanly(tmp_path):
    trainer = make_trainer(tmp_path, epochs=50)
    loader = trainer.train_loader
    original = loader.epoch

    def epoch_with_interrupt(epoch, start_batch=0):
        for i, batch in enumerate(original(epoch, start_batch)):
            if epoch == 1 and i == 1:
                os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C
            yield batch

    loader.epoch = epoch_with_interrupt
    assert trainer.fit(50) == "interrupted"
    _, _, _, meta = load_checkpoint(trainer.checkpoint_path)
    assert (meta["epoch"], meta["batch"]) == (1, 2)  # the step in flight finished first
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, lr=1e6, momentum=0.0, schedule="constant")
    trainer.save()
    good = load_checkpoint(trainer.checkpoint_path)[0]
    with pytest.raises(TrainingDiverged, match="loss became"):
        trainer.fit(2)
    kept = load_checkpoint(trainer.checkpoint_path)[0]
    for k in good:
        np.testing.assert_array_equal(kept[k], good[k])


def test_corrupt_and_missing_checkpoints_are_reported(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(str(tmp_path / "nope.npz"))
    path = tmp_path / "c.npz"
    save_checkpoint(str(path), {"w": np.ones(3)}, meta={"epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(str(path))


def test_metrics():
    logits = np.array([[3, 2, 1], [1, 3, 2], [3, 1, 2], [1, 2, 3.0]])
    labels = np.array([0, 2, 1, 2])
    assert metrics.topk_correct(logits, labels, 1) == 2
    assert metrics.topk_correct(logits, labels, 2) == 3
    cm = metrics.confusion_matrix(labels, logits.argmax(1), 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [1, 0, 0], [0, 1, 1]])
    precision, recall = metrics.per_class(cm)
    np.testing.assert_allclose(precision, [0.5, 0, 1])
    np.testing.assert_allclose(recall, [1, 0, 0.5])
    assert "confusion matrix" in metrics.format_report(cm, ("a", "b", "c"))
