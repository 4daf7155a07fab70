"""Quick start (numbacnn/runtime/quick_start.py): on a cold JIT cache the kernels run as NumPy twins
while a compiler process fills the cache, each moving to its compiled form once that is there."""

import glob
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from numbacnn import layers as L
from numbacnn.runtime import quick_start, warm_keys
from numbacnn.runtime.device import CPU


@pytest.fixture
def cold_cache(tmp_path, monkeypatch):
    """Quick start on (conftest turns it off), with a warm-keys file of its own that starts empty:
    every signature counts as cold. (numba's cache folder itself cannot move in this process: each
    kernel binds its cache folder when its module is first imported.)"""
    path = str(tmp_path / "cache" / "quick-start-keys.json")
    monkeypatch.setattr(warm_keys, "warm_keys_path", lambda: path)
    monkeypatch.setenv(quick_start.ENV, "1")
    yield tmp_path / "cache"
    if quick_start.state.active is not None:  # a test that failed half-way: leave routing off
        quick_start.state.active.close()
    quick_start.shutdown()


def _wait(condition, seconds=300):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_cold_kernel_runs_on_numpy_until_compiled_then_compiled(cold_cache):
    routing = quick_start.begin()
    assert routing is not None and CPU.ops is not None
    x = np.linspace(-1, 1, 24).reshape(2, 3, 4)  # float64 3-D: a signature of its own
    out = np.empty_like(x)
    CPU.ops.relu_forward(out, x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    assert routing.numpy_calls == 1 and routing.poll() == 1  # sent to the compiler
    _wait(lambda: routing.poll() == 0)
    CPU.ops.relu_forward(out, -x)
    np.testing.assert_array_equal(out, np.maximum(-x, 0))
    assert routing.numpy_calls == 1  # the compiled kernel ran
    report = routing.report()
    assert report["signatures"] == 1 and report["compiled_in_background"] == 1 and report["failed"] == []
    assert routing.settle() and CPU.ops_override is None
    # The next process (here: the next Routing) knows it is compiled and never routes it to NumPy.
    again = quick_start.begin()
    CPU.ops.relu_forward(out, x)
    assert again.numpy_calls == 0
    again.close()


def test_a_compiler_that_dies_leaves_the_kernel_to_this_process(cold_cache):
    routing = quick_start.begin(command=[sys.executable, "-c", "pass"])
    x = np.ones((3, 2, 2))
    out = np.empty_like(x)
    CPU.ops.relu_forward(out, x)
    _wait(lambda: routing.poll() == 0)
    CPU.ops.relu_forward(out, x)
    assert routing.numpy_calls == 1
    routing.close()


def test_without_a_compiler_process_kernels_compile_here(cold_cache):
    routing = quick_start.begin(command=[str(cold_cache / "no-such-compiler")])
    x = np.ones((2, 2, 3))
    out = np.empty_like(x)
    CPU.ops.relu_forward(out, x)
    np.testing.assert_array_equal(out, x)
    assert routing.numpy_calls == 0 and "compiler process" in routing.report()["failed"][0]
    routing.close()


def test_switched_off_it_compiles_here_and_records_what_it_compiled(cold_cache, monkeypatch):
    """NUMBACNN_QUICK_START=0 (as `numbacnn compile` does): every call runs compiled, and the
    signatures it compiled are written down, so that a later quick start knows them warm."""
    monkeypatch.setenv(quick_start.ENV, "0")
    routing = quick_start.begin()
    x = np.ones((4, 2, 5))
    out = np.empty_like(x)
    CPU.ops.relu_forward(out, x)
    assert routing.numpy_calls == 0 and routing.report()["signatures"] == 1
    assert routing.settle() and CPU.ops_override is None
    key, _ = warm_keys.signature_key("numbacnn.kernels.cpu:relu_forward", (out, x))
    assert key in warm_keys.read_warm_keys(routing.keys.path)
    # The batch is part of the key up to FULL_BATCH only: every larger batch is one signature.
    assert warm_keys.signature_key("numbacnn.kernels.cpu:relu_forward", (out[:1], x[:1]))[0] != key
    big = np.ones((3 * warm_keys.FULL_BATCH, 2, 5))
    big_key = warm_keys.signature_key("numbacnn.kernels.cpu:relu_forward", (big, big))[0]
    assert warm_keys.signature_key("numbacnn.kernels.cpu:relu_forward", (big[:-1], big[:-1]))[0] == big_key


@pytest.mark.parametrize(
    "warm, cold",
    [
        pytest.param(L.MaxPool2d(2), L.MaxPool2d(3, 2, 1), id="max pool 2 vs 3/2/1"),
        pytest.param(L.Conv2d(2, 2, 3, padding=1), L.Conv2d(2, 2, 3, padding=2, dilation=2), id="conv dilation"),
    ],
)
def test_a_layer_that_differs_only_in_hyper_parameters_does_not_compile_in_training(warm, cold, cold_cache):
    """Two layers whose kernels the wrappers send to different compiled functions, with arrays of
    the same shapes: the second is a signature of its own, so it runs on NumPy while the compiler
    process builds it, instead of compiling inside the training process (the stall quick start
    exists to prevent)."""
    routing = quick_start.begin(command=[sys.executable, "-c", "import time; time.sleep(600)"])
    x = np.random.default_rng(0).standard_normal((2, 2, 8, 8)).astype(np.float32)
    warm.forward(x)  # on NumPy; then count its signatures compiled, as a warm cache would
    routing.ready |= routing.signatures
    before = routing.numpy_calls
    cold.forward(x)
    assert routing.numpy_calls > before
    assert routing.report()["compiled_in_process"] == 0
    routing.close()


@pytest.mark.parametrize("name", ["lenet5", "resnet8", "vgg11_small", "alexnet_small", "inception_small"])
def test_each_model_family_trains_on_numpy_kernels_then_compiled(name, quick_start_on, tmp_path):
    """A short run per family with quick start on and nothing known compiled: the first steps run
    on the NumPy twins, nothing compiles in the training process, and the loss stays finite."""
    from numbacnn.training.config import build_trainer, load_data, resolve_config

    config = resolve_config(name, dataset="synthetic", synthetic_size=256, batch_size=32, epochs=1)
    dataset = load_data(config)
    trainer = build_trainer(config, dataset, progress=False)
    assert trainer.fit(1) == "finished"
    report = trainer.quick_start_report
    assert report["numpy_calls"] > 0 and report["signatures"] > 5
    assert report["compiled_in_process"] == 0 and report["failed"] == [], report
    assert np.isfinite(trainer.history[0]["train_loss"])


def _train(env, out):
    command = [sys.executable, "-m", "numbacnn", "train", "lenet5", "--dataset", "synthetic"]
    command += ["--epochs", "1", "--json", "--no-plots", "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_cold_first_run_trains_at_once_and_leaves_the_cache_warm(tmp_path):
    """The newcomer's first run: no kernel compiled in the training process before or during the
    NumPy steps; the compiler process fills the cache, and the next run loads everything from it,
    on the NumPy twins only while numba's target starts. Runs without quick start are bit for bit
    one another (resumed ones too: test_a_resumed_run_never_starts_a_warm_signature_on_numpy)."""
    cache = tmp_path / "cache"
    # A registry of running trainings of its own (core_share.py): another numbacnn training on
    # this machine would change the thread count, and with it the order of some sums.
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), XDG_RUNTIME_DIR=str(tmp_path), **{quick_start.ENV: "1"})
    cold = _train(env, tmp_path / "cold")
    report = cold["quick_start"]
    assert report["numpy_calls"] > 0 and report["signatures"] > 10
    assert report["compiled_in_process"] == 0
    assert cold["history"][0]["val_acc"] > 0.5  # it trained

    def keys_written():
        files = glob.glob(str(cache / "numbacnn" / "quick-start-*.json"))
        return files and len(warm_keys.read_warm_keys(files[0])) >= report["signatures"]

    _wait(keys_written, seconds=600)  # the compiler goes on after the run ends
    warm = _train(env, tmp_path / "warm")
    report = warm["quick_start"]
    assert report["signatures"] == 0 and report["compiled_in_process"] == 0
    assert report["numpy_calls"] == report["numpy_calls_while_numba_started"]  # twins only while starting
    plain = [_train(dict(env, **{quick_start.ENV: "0"}), tmp_path / f"plain{i}") for i in range(2)]
    assert plain[0]["quick_start"]["numpy_calls"] == 0
    assert plain[0]["history"][0]["train_loss"] == plain[1]["history"][0]["train_loss"]
    assert plain[0]["history"][0]["val_loss"] == plain[1]["history"][0]["val_loss"]
    for run in (cold, warm):
        np.testing.assert_allclose(run["history"][0]["train_loss"], plain[0]["history"][0]["train_loss"], rtol=1e-5)


@pytest.fixture
def numba_starting(monkeypatch):
    """A QuickStart of its own whose numba start-up waits until the test sets the event (in this
    process numba has long started: the real thread would be done at once)."""
    release = threading.Event()
    monkeypatch.setattr(quick_start, "_start_numba", lambda: release.wait(60))
    monkeypatch.setattr(quick_start, "state", quick_start.QuickStart())
    yield release
    release.set()


def _warm_relu():
    """A relu signature compiled in this process and recorded warm, as a previous run leaves it."""
    from numbacnn.kernels import cpu

    x = np.linspace(-1, 1, 30).reshape(3, 2, 5)
    out = np.empty_like(x)
    cpu.relu_forward(out, x)
    key, _ = warm_keys.signature_key("numbacnn.kernels.cpu:relu_forward", (out, x), names=("out", "x"))
    warm_keys.add_warm_keys(warm_keys.warm_keys_path(), [key])
    return out, x


def test_a_warm_signature_runs_on_numpy_only_while_numba_starts(cold_cache, monkeypatch, numba_starting):
    out, x = _warm_relu()
    routing = quick_start.begin()
    CPU.ops.relu_forward(out, x)  # numba's target still starting: the twin runs
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    assert routing.numpy_calls == routing.starting_calls == 1 and routing.signatures == set()
    assert not routing.settle()  # routing stays until numba has started
    numba_starting.set()
    routing.starting.join()
    CPU.ops.relu_forward(out, -x)
    assert routing.numpy_calls == 1 and routing.report()["compiled_in_process"] == 0
    assert routing.settle() and CPU.ops_override is None


def test_a_resumed_run_never_starts_a_warm_signature_on_numpy(cold_cache, monkeypatch):
    """A resumed run must continue bit for bit: numba starts before its first call (here, where it
    has started long ago, at once), and the signatures the cache holds run compiled."""
    monkeypatch.setattr(quick_start, "state", quick_start.QuickStart())
    out, x = _warm_relu()
    routing = quick_start.begin(resumed=True)
    assert routing.starting is None and not quick_start.state.numba_start().is_alive()
    CPU.ops.relu_forward(out, x)
    assert routing.numpy_calls == 0
    routing.close()


def test_a_resumed_trainer_asks_for_no_twins(monkeypatch, tmp_path):
    from numbacnn.training.config import build_trainer, load_data, resolve_config

    asked = []
    monkeypatch.setattr(quick_start, "begin", lambda **options: asked.append(options))
    config = resolve_config("lenet5", dataset="synthetic", synthetic_size=64, batch_size=32, epochs=2)
    trainer = build_trainer(config, load_data(config), out_dir=str(tmp_path / "run"), progress=False)
    assert trainer.fit(2, max_steps=1) == "interrupted"
    trainer.fit(2, max_steps=1)
    assert [a["resumed"] for a in asked] == [False, True]
