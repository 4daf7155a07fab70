"""Quick start's compiler (numbacnn/runtime/compiler.py): one process per JIT cache, whoever
starts it. Back-to-back short runs join the compiler that is already working instead of each
starting one that fights the others for the cores."""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

from numbacnn.runtime import compiler as compiler_module
from numbacnn.runtime.compiler import KernelCompiler
from numbacnn.runtime.warm_keys import signature_key

COMPILER = "numbacnn.tools.kernel_compiler"


def _compilers(marker):
    """PIDs of compiler processes whose command line holds ``marker`` (this test's cache)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    line = f.read()
            except OSError:
                continue
            if COMPILER.encode() in line and marker.encode() in line:
                found.append(int(pid))
    return found


class _Monitor(threading.Thread):
    """The most compiler processes alive at once, sampled every 20 ms."""

    def __init__(self, marker):
        super().__init__(daemon=True)
        self.marker, self.most, self.seen, self._finished = marker, 0, set(), threading.Event()

    def run(self):
        while not self._finished.is_set():
            alive = _compilers(self.marker)
            self.most = max(self.most, len(alive))
            self.seen.update(alive)
            time.sleep(0.02)

    def stop(self):
        self._finished.set()
        self.join()


def test_back_to_back_short_runs_share_one_compiler(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), XDG_RUNTIME_DIR=str(tmp_path), NUMBACNN_QUICK_START="1")
    monitor = _Monitor(str(cache))
    monitor.start()
    try:
        reports = []
        for run in range(4):
            command = [sys.executable, "-m", "numbacnn", "train", "lenet5", "--dataset", "synthetic", "--epochs", "1"]
            command += ["--synthetic-size", "64", "--json", "--no-plots", "--out", str(tmp_path / f"run{run}")]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            reports.append(json.loads(done.stdout.strip().splitlines()[-1])["quick_start"])
    finally:
        monitor.stop()
        for pid in _compilers(str(cache)):
            os.kill(pid, 9)
    assert reports[0]["numpy_calls"] > 0 and all(r["compiled_in_process"] == 0 for r in reports)
    # The runs ended while their kernels were still compiling: each later run found the compiler
    # of the first at work (or, once the queue had emptied, started the next one), never a second.
    assert monitor.most == 1, f"{monitor.most} compilers alive at once"


def _request():
    x = np.ones((2, 3), np.float32)
    key, specs = signature_key("numbacnn.kernels.cpu:relu_forward", (np.empty_like(x), x))
    return key, "numbacnn.kernels.cpu:relu_forward", specs


SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]  # a compiler that answers nothing


def test_a_second_process_joins_the_running_compiler(tmp_path):
    path = str(tmp_path / "keys.json")
    first, second = KernelCompiler(path, SLEEPER), KernelCompiler(path, SLEEPER)
    try:
        assert first.submit(*_request()) and len(first.started) == 1
        assert first.running() and second.running()  # the started one holds the inherited lock
        assert second.submit(*_request()) and second.started == []
        assert len(os.listdir(tmp_path / "keys.json.requests")) == 1  # one request for one key
    finally:
        first.stop()
    assert not second.running()


def test_a_request_left_by_a_compiler_that_ended_gets_a_new_one(tmp_path):
    """A compiler that exits without answering (it died, or went idle just as the request came):
    the next poll starts another; after a few fruitless starts the process compiles it itself."""
    path = str(tmp_path / "keys.json")
    ends = KernelCompiler(path, [sys.executable, "-c", "pass"])
    key = _request()[0]
    assert ends.submit(*_request())
    answered = []
    deadline = time.monotonic() + 60
    while not answered and time.monotonic() < deadline:
        ends.started[-1].wait()
        answered = ends.poll(set)
    assert answered == [(key, False)] and len(ends.started) == compiler_module.MAX_FRUITLESS_STARTS


def test_the_real_compiler_answers_and_exits_when_idle(tmp_path):
    path = str(tmp_path / "keys.json")
    real = KernelCompiler(path)
    key = _request()[0]
    assert real.submit(*_request())
    from numbacnn.runtime.warm_keys import WarmKeys

    keys, answered = WarmKeys(path), []
    deadline = time.monotonic() + 300
    while not answered and time.monotonic() < deadline:
        answered = real.poll(keys.current)
        time.sleep(0.1)
    assert answered == [(key, True)] and os.listdir(tmp_path / "keys.json.requests") == []
    real.started[-1].wait(timeout=60)  # the queue stayed empty: it exits, and frees the lock
    assert not real.running()


def test_a_kernel_that_fails_to_compile_leaves_a_note(tmp_path):
    path = str(tmp_path / "keys.json")
    real = KernelCompiler(path)
    key, _, specs = _request()
    key = ("numbacnn.kernels.cpu:no_such_kernel",) + key[1:]
    assert real.submit(key, "numbacnn.kernels.cpu:no_such_kernel", specs)
    answered, deadline = [], time.monotonic() + 300
    while not answered and time.monotonic() < deadline:
        answered = real.poll(set)
        time.sleep(0.1)
    assert answered == [(key, False)]
    assert "AttributeError" in real.failed[0][1]
    real.stop()
