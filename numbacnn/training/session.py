"""What :meth:`Trainer.fit` sets up around its loop and always takes down again: signal handlers
(Ctrl-C / SIGTERM finish the step and save), core sharing with other trainings, the start from
rank 0's state, and quick start's routing of CPU kernels on a cold JIT cache."""

from __future__ import annotations

import contextlib
import signal
import threading

from ..runtime import quick_start
from ..runtime.core_share import CoreShare
from ..runtime.device import CPU
from .runs import check_writable


@contextlib.contextmanager
def fit_session(trainer):
    """Prepare ``trainer`` for fit() and restore everything afterwards, whatever happens."""
    if trainer.out_dir:
        check_writable(trainer.out_dir)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, trainer._on_signal)
    on_cpu = trainer.model.device == CPU
    # Concurrent CPU trainings share the cores instead of collapsing (core_share.py).
    trainer._share = CoreShare() if trainer.share_cores and on_cpu else None
    # Every rank starts from rank 0's weights, statistics and optimizer state.
    trainer.world.broadcast_state(trainer.model, trainer.optimizer)
    # Several ranks keep the compiled kernels: their steps should round alike.
    if on_cpu and trainer.world.size == 1:
        # A resumed run never starts on the twins (quick_start.py): it continues bit for bit.
        resumed = (trainer.epoch, trainer.batch) != (0, 0)
        trainer._warmup = quick_start.begin(numpy=trainer.quick_start, resumed=resumed)
    try:
        yield
    finally:
        trainer._end_warmup()
        if trainer._share is not None:
            trainer._share.close()
            trainer._share = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)
