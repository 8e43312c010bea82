"""Terminal output: a live status line on a TTY, only stage results otherwise."""

from __future__ import annotations

import shutil
import sys
import time


class Progress:
    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() and not quiet
        self.quiet = quiet
        self._last = 0.0
        self._shown = False

    def status(self, msg: str) -> None:
        """Transient: shown on a TTY, rate-limited; dropped when not a TTY."""
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\x1b[K" + msg[:width])
        self.stream.flush()
        self._shown = True

    def line(self, msg: str) -> None:
        """Permanent: a stage result, a warning, a summary."""
        if self.quiet:
            return
        if self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False
        self.stream.write(msg + "\n")
        self.stream.flush()

    def error(self, msg: str) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False
        self.stream.write(msg + "\n")
        self.stream.flush()
