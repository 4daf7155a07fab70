"""The training progress display: one status line per epoch on stderr."""

import sys
import time


class Progress:
    """One status line per epoch on stderr, redrawn at most 5 times a second on a terminal."""

    def __init__(self, enabled=True, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def update(self, text, final=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty and (final or now - self._last > 0.2):
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
            self.stream.flush()
            self._last = now
        elif final:
            self.stream.write(text + "\n")
            self.stream.flush()


def bar(done, total, width=20):
    filled = int(width * done / max(total, 1))
    return "[" + "=" * filled + ">" * (filled < width) + " " * (width - filled - 1) + "]"
