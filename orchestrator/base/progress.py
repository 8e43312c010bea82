"""Terminal output: stage results as lines; progress as a live status line on a TTY (drawn
with rich: done/total, a bar, the time left), and in a log (CI, a pipe) at most one line
every 30 s during a long stage; nothing but errors with --quiet.

A long stage (tree import, kernel build, tests) reports through a `Meter`: its done count,
its total when known, and the time a previous run took (`expected`, from the cache's
history), from which the time left is estimated (`time_left`).
"""

from __future__ import annotations

import io
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table

LOG_INTERVAL = 30.0  # seconds between two progress lines in a log


def time_left(elapsed: float, done: int, total: int | None,
              expected: float | None) -> float | None:
    """Seconds left, or None when nothing gives an estimate. A previous run's duration
    (`expected`) is the estimate: the share of it the done/total count says is left; once a
    tenth is done, the pace of this run (elapsed per step) takes over, so a slower machine
    than last time does not say "0:00 left" for minutes. Without a count: what is left of
    the previous run's duration."""
    if expected is None:
        return None
    if total:
        frac = min(done / total, 1.0)
        if frac >= 0.1:
            return elapsed * (1 - frac) / frac
        return expected * (1 - frac)
    return max(expected - elapsed, 0.0)


def clock_text(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


@dataclass
class Meter:
    """One long stage's progress (see the module's docstring)."""

    progress: Progress
    label: str  # "build x86_64"
    total: int | None = None
    expected: float | None = None
    done: int = 0
    started: float = field(default=0.0)

    def update(self, text: str = "", done: int | None = None) -> None:
        """One more step (or `done` steps in all), `text` naming the current one."""
        self.done = self.done + 1 if done is None else done
        self.progress.show(self, text)

    def elapsed(self) -> float:
        return self.progress.clock() - self.started

    def left(self) -> float | None:
        return time_left(self.elapsed(), self.done, self.total, self.expected)

    def counts(self) -> str:
        """`12/40 (30%)`, or `12` without a total."""
        if not self.total:
            return str(self.done)
        return f"{self.done}/{self.total} ({min(100, 100 * self.done // self.total)}%)"

    def describe(self, text: str = "") -> str:
        """The line a log gets: `build x86_64: 1234/2500 (49%), 1:23 left: CC mm/mmap.o`."""
        left = self.left()
        when = f", {clock_text(left)} left" if left is not None else ""
        return f"{self.label}: {self.counts()}{when}" + (f": {text}" if text else "")


class Progress:
    """Where orch tells the user what happens (stderr by default)."""

    def __init__(self, stream=None, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        isatty = self.stream.isatty() if tty is None else tty
        self.tty = isatty and not quiet
        self.clock = clock
        self._last = -1e9  # the last live redraw (TTY)
        self._logged = clock()  # the last line written (log): progress waits 30 s after it
        self._shown = False

    def meter(self, label: str, total: int | None = None,
              expected: float | None = None) -> Meter:
        """A long stage starts: report its steps through the Meter's update()."""
        return Meter(self, label, total or None, expected, started=self.clock())

    def status(self, msg: str) -> None:
        """Transient: redrawn on a TTY (rate-limited); in a log, a line at most every 30 s."""
        if self.quiet:
            return
        if not self.tty:
            self._log(msg)
            return
        if self._redraw_due():
            self._draw(msg)

    def show(self, m: Meter, text: str = "") -> None:
        if self.quiet:
            return
        if not self.tty:
            self._log(m.describe(text))
            return
        if not self._redraw_due():
            return
        grid = Table.grid(padding=(0, 1))
        left = m.left()
        row = [m.label]
        if m.total:
            row.append(ProgressBar(total=m.total, completed=min(m.done, m.total), width=20))
        row.append(m.counts())
        if left is not None:
            row.append(f"{clock_text(left)} left")
        row.append(text)
        grid.add_row(*row)
        width = shutil.get_terminal_size((100, 20)).columns - 1
        buf = io.StringIO()
        Console(file=buf, width=width, force_terminal=True, color_system="standard",
                highlight=False).print(grid, end="", no_wrap=True, overflow="ellipsis")
        self._draw(buf.getvalue().split("\n")[0], plain=False)

    def _redraw_due(self) -> bool:
        now = self.clock()
        if now - self._last < 0.1:
            return False
        self._last = now
        return True

    def _log(self, msg: str) -> None:
        now = self.clock()
        if now - self._logged < LOG_INTERVAL:
            return
        self._logged = now
        self.stream.write(msg + "\n")
        self.stream.flush()

    def _draw(self, msg: str, plain: bool = True) -> None:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\x1b[K" + (msg[:width] if plain else msg))
        self.stream.flush()
        self._shown = True

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False
        self._logged = self.clock()

    def line(self, msg: str) -> None:
        """Permanent: a stage result, a warning, a summary."""
        if self.quiet:
            return
        self._clear()
        self.stream.write(msg + "\n")
        self.stream.flush()

    def error(self, msg: str) -> None:
        """Shown whatever --quiet says: an error, or what the user asked to see."""
        self._clear()
        self.stream.write(msg + "\n")
        self.stream.flush()
