"""What :meth:`Trainer.fit` sets up around its loop and always takes down again: signal handlers
(Ctrl-C / SIGTERM finish the step and save), core sharing with other trainings, the start from
rank 0's state, and quick start's routing of CPU kernels on a cold JIT cache."""

from __future__ import annotations

import signal
import threading

from ..runtime import quick_start
from ..runtime.core_share import CoreShare
from ..runtime.device import CPU
from .runs import check_writable


class FitSession:
    """What one fit() sets up around its loop and takes down again, whatever happens: the loop asks
    it for the core share (``share``, None when not sharing) and quick start's kernel routing
    (``routing``, None once it has stepped aside). It reads the Trainer only through its hooks:
    ``on_signal``, ``resumed`` and the settings ``out_dir``, ``share_cores``, ``quick_start``."""

    def __init__(self, trainer):
        self.trainer, self.share, self.routing = trainer, None, None
        self.quick_start_report = None  # what quick start did, once routing has ended
        self._previous_handlers = {}

    def __enter__(self):
        trainer = self.trainer
        if trainer.out_dir:
            check_writable(trainer.out_dir)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous_handlers[sig] = signal.signal(sig, trainer.on_signal)
        on_cpu = trainer.model.device == CPU
        # Concurrent CPU trainings share the cores instead of collapsing (core_share.py).
        self.share = CoreShare() if trainer.share_cores and on_cpu else None
        # Every rank starts from rank 0's weights, statistics and optimizer state.
        trainer.world.broadcast_state(trainer.model, trainer.optimizer)
        # Several ranks keep the compiled kernels: their steps should round alike. A resumed run
        # never starts on the twins (quick_start.py): it continues bit for bit.
        if on_cpu and trainer.world.size == 1:
            self.routing = quick_start.begin(numpy=trainer.quick_start, resumed=trainer.resumed)
        return self

    def end_routing(self):
        """Quick start steps aside: its report is kept, the kernels run compiled from now on."""
        if self.routing is not None:
            self.quick_start_report = self.routing.report()
            self.routing.close()
            self.routing = None

    def __exit__(self, *exc):
        self.end_routing()
        if self.share is not None:
            self.share.close()
            self.share = None
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        return False
