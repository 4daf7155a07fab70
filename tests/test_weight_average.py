"""Weight averaging (--ema): the ema_update kernel against NumPy, WeightAverage's ramp, BatchNorm
statistics and swap, exact resume with random erasing and averaging, and the commands that use the
averaged weights. (CPU against CUDA: test_cuda_optim.py.)"""

import json

import numpy as np
import pytest

import numbacnn as nc
import numbacnn.kernels.cpu as cpu_kernels
import numbacnn.kernels.npy as npy_kernels
from numbacnn.formats.checkpoint import load_checkpoint
from numbacnn.training import WeightAverage
from numbacnn.training.config import build_trainer, load_data, resolve_config


@pytest.mark.parametrize("backend", [cpu_kernels, npy_kernels], ids=["cpu", "npy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ema_update_matches_numpy(backend, dtype, rng):
    average, value = (rng.standard_normal((3, 41)).astype(dtype) for _ in range(2))
    expected = 0.9 * average.astype(np.float64) + 0.1 * value.astype(np.float64)
    backend.ema_update(average, value, 0.9)
    assert average.dtype == dtype
    single = dtype == np.float32
    np.testing.assert_allclose(average, expected, rtol=1e-6 if single else 1e-14, atol=1e-7 if single else 0)


def _small_net():
    nc.manual_seed(0)
    return nc.layers.Sequential(
        nc.layers.Conv2d(1, 4, 3, padding=1),
        nc.layers.BatchNorm2d(4),
        nc.layers.ReLU(),
        nc.layers.AdaptiveAvgPool2d(1),
        nc.layers.Flatten(),
        nc.layers.Linear(4, 3),
    )


def test_the_average_ramps_its_decay_and_follows_batchnorm_statistics(rng):
    model = _small_net()
    opt = nc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    crit = nc.losses.CrossEntropyLoss()
    average = WeightAverage(model, opt, 0.95)
    expected = {k: np.array(v, np.float64) for k, v in model.state_dict().items() if v.dtype.kind == "f"}
    for t in range(1, 6):
        x = rng.standard_normal((8, 1, 6, 6)).astype(np.float32)
        opt.zero_grad()
        crit.forward(model(x), rng.integers(0, 3, 8))
        model.backward(crit.backward())
        opt.step()
        average.update()
        decay = min(0.95, (1 + t) / (10 + t))
        for k, v in model.state_dict().items():
            if k in expected:
                expected[k] = decay * expected[k] + (1 - decay) * v
    live = {k: v.copy() for k, v in model.state_dict().items()}
    averaged = average.state_dict()
    assert {"1.running_mean", "1.running_var", "0.weight"} <= set(averaged)
    for k, v in expected.items():
        np.testing.assert_allclose(averaged[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    assert not np.allclose(averaged["1.running_mean"], live["1.running_mean"])  # averaged, not copied
    with average.in_use():
        for k, v in expected.items():
            np.testing.assert_allclose(model.state_dict()[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    for k, v in model.state_dict().items():  # the live weights are back, bit for bit
        np.testing.assert_array_equal(v, live[k], err_msg=k)


def test_a_decay_outside_0_1_is_refused():
    model = _small_net()
    opt = nc.optim.SGD(model.parameters(), lr=0.1)
    for decay in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="--ema: the decay must lie in"):
            WeightAverage(model, opt, decay)


CONFIG = dict(dataset="synthetic", synthetic_size=96, batch_size=32, epochs=2, seed=3, augment=True)


def _trainer(tmp_path, name, **overrides):
    config = resolve_config("resnet8", **dict(CONFIG, random_erasing=0.5, ema=0.9, **overrides))
    return build_trainer(config, load_data(config), out_dir=str(tmp_path / name), progress=False)


def test_resume_is_exact_with_erasing_and_averaging(tmp_path):
    straight = _trainer(tmp_path, "straight")
    assert straight.fit(2) == "finished"
    first = _trainer(tmp_path, "resumed")
    assert first.fit(2, max_steps=4) == "interrupted"  # mid-epoch 2
    second = _trainer(tmp_path, "resumed")
    second.restore(*load_checkpoint(first.checkpoint_path))
    assert second.average.updates == 4
    assert second.fit(2) == "finished"
    for k, v in straight.model.state_dict().items():
        np.testing.assert_array_equal(second.model.state_dict()[k], v, err_msg=k)
    for k, v in straight.average.state_dict().items():
        np.testing.assert_array_equal(second.average.state_dict()[k], v, err_msg=k)
    assert [h["val_acc"] for h in second.history] == [h["val_acc"] for h in straight.history]
    _, _, _, meta = load_checkpoint(straight.checkpoint_path)
    assert meta["average_updates"] == 6 and set(meta["average"]) == set(straight.model.state_dict())


def test_validation_uses_the_average(tmp_path):
    """The epoch's validation figures are those of the averaged weights, not the live ones."""
    trainer = _trainer(tmp_path, "run", epochs=1)
    trainer.fit(1)
    from numbacnn.training import evaluate

    live = evaluate(trainer.model, trainer.val_loader, trainer.loss)
    with trainer.average.in_use():
        averaged = evaluate(trainer.model, trainer.val_loader, trainer.loss)
    assert trainer.history[-1]["val_loss"] == pytest.approx(averaged["loss"], rel=1e-6)
    assert live["loss"] != pytest.approx(averaged["loss"], rel=1e-6)


@pytest.mark.usefixtures("quick_start_on")
def test_evaluate_and_export_use_the_averaged_weights_and_say_so(tmp_path, cli):
    out = tmp_path / "run"
    args = ("--dataset", "synthetic", "--synthetic-size", 64, "--epochs", 1, "--quiet")
    r = cli("train", "lenet5", *args, "--ema", 0.9, "--out", out)
    assert r.exit_code == 0, r.output
    ckpt = out / "checkpoint.npz"
    model_state, _, _, meta = load_checkpoint(str(ckpt))
    r = cli("evaluate", ckpt, "--json")
    assert r.exit_code == 0 and "using the averaged weights (--ema 0.9)" in r.stderr
    averaged_top1 = json.loads(r.stdout)["top1"]
    r = cli("export", ckpt, tmp_path / "w.safetensors")
    assert r.exit_code == 0 and "using the averaged weights" in r.stderr
    pytest.importorskip("safetensors")
    model = nc.models.lenet5(in_channels=1, num_classes=10)
    model.load(str(tmp_path / "w.safetensors"))
    for k, v in meta["average"].items():
        np.testing.assert_array_equal(model.state_dict()[k], v, err_msg=k)
    assert any(not np.array_equal(meta["average"][k], model_state[k]) for k in meta["average"])
    assert 0 <= averaged_top1 <= 1


@pytest.mark.usefixtures("quick_start_on")
def test_a_checkpoint_read_and_written_back_keeps_its_averaged_weights(tmp_path, cli):
    """load_checkpoint gives the average in meta["average"]; save_checkpoint takes that meta back
    (the arrays go beside the weights, not into the JSON)."""
    from numbacnn.formats.checkpoint import save_checkpoint

    out = tmp_path / "run"
    args = ("--dataset", "synthetic", "--synthetic-size", 64, "--epochs", 1, "--quiet", "--ema", 0.9)
    assert cli("train", "lenet5", *args, "--out", out).exit_code == 0
    model_state, optim_state, sched_state, meta = load_checkpoint(str(out / "checkpoint.npz"))
    save_checkpoint(tmp_path / "copy.npz", model_state, optim_state, sched_state, meta)
    _, _, _, again = load_checkpoint(str(tmp_path / "copy.npz"))
    assert set(again["average"]) == set(meta["average"])
    for k, v in meta["average"].items():
        np.testing.assert_array_equal(again["average"][k], v, err_msg=k)
    assert again["config"] == meta["config"]


def test_ema_zero_turns_off_the_average_a_recipe_sets(tmp_path, cli):
    """--recipe long averages the weights; --ema 0 beside it keeps none (and -1 is refused)."""
    assert resolve_config("resnet20", recipe="long")["ema"] == 0.999
    config = resolve_config("resnet8", recipe="long", ema=0.0, **dict(CONFIG, epochs=1))
    assert build_trainer(config, load_data(config), out_dir=str(tmp_path / "off"), progress=False).average is None
    r = cli("train", "lenet5", "--ema", -1, "--dataset", "synthetic", "--out", tmp_path / "bad")
    assert r.exit_code == 2 and "--ema" in r.output
