"""A closed stdout loses nothing: ``numbacnn predict CKPT DIR --csv out.csv | head`` still writes
out.csv.

Python turns SIGPIPE into BrokenPipeError at the first write after the reader has gone, which
would end a command before the files it was asked for are written. Every command's stdout goes
through :class:`PipeGuard` instead: after the pipe breaks, further output is dropped, the command
runs to its end (files written), and the process then exits quietly with status 141, as a Unix
tool killed by SIGPIPE does.
"""

from __future__ import annotations

import io
import os
import sys

import click

CLOSED_PIPE_EXIT = 128 + 13  # a process killed by SIGPIPE, as the shell reports it

__all__ = ["CLOSED_PIPE_EXIT", "GuardedGroup", "PipeGuard"]


class PipeGuard(io.TextIOBase):
    """A text stream over ``stream`` that drops writes once the reader has closed the pipe."""

    def __init__(self, stream):
        self.stream, self.broken = stream, False

    @property
    def encoding(self):
        return self.stream.encoding

    @property
    def errors(self):
        return self.stream.errors

    def isatty(self):
        return self.stream.isatty()

    def fileno(self):
        return self.stream.fileno()

    def writable(self):
        return True

    def write(self, text):
        if not self.broken:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._closed_by_reader()
        return len(text)

    def flush(self):
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._closed_by_reader()

    def _closed_by_reader(self):
        self.broken = True
        # What the stream still buffers can never be delivered: point its descriptor at /dev/null,
        # so that the interpreter's last flush at exit is quiet too.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # an in-memory stream
            pass


class GuardedGroup(click.Group):
    """A click group whose commands write stdout through a PipeGuard (see the module's text)."""

    def main(self, *args, **kwargs):
        guard = sys.stdout = PipeGuard(sys.stdout)
        try:
            code = 0
            try:
                super().main(*args, **kwargs)
            except SystemExit as e:
                code = e.code
        finally:
            if sys.stdout is guard:
                sys.stdout = guard.stream
        if guard.broken and code in (0, None):
            code = CLOSED_PIPE_EXIT  # quietly: the reader chose to stop reading
        sys.exit(code)
