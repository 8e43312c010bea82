"""The one place where orch starts host programs.

argv lists only (never a shell), the shell-quoted command is logged, `cwd=` is passed
rather than chdir, and a timeout kills the whole process group.

Every child runs in a process group of its own (so that a timeout can kill make and all
the compilers it started), which also takes it out of orch's own group: a SIGKILL of orch
(a CI job's timeout, the OOM killer, a test harness) would leave make compiling in the
build dir while the next run checks out other sources there; objects compiled from the
old sources, written after the new checkout, then pass make's timestamp check and are
linked into a kernel stored under the new key. So each orch has a watchdog (`_Watchdog`):
a small process in a session of its own that learns every child's process group through
a pipe and, when the pipe closes (orch exits or dies, however), SIGTERMs the groups still
running (make deletes the targets it was writing) and SIGKILLs what is left.

Long-lived children (QEMU, lava-run, a person's ssh) come through `Runner.spawn`: the same
environment, command log and watchdog, and a `Child` whose `with` block ends its group.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence


@dataclass
class Result:
    argv: list[str]
    returncode: int
    output: str  # combined stdout+stderr (full when captured, else the tail)
    duration: float
    timed_out: bool = False
    tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


# Set by git for the programs it runs (hooks, `git bisect run`): left in place they would
# make orch's own git commands act on the caller's repository instead of orch's worktree.
GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX",
                     "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY",
                     "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE")


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in GIT_LOCATION_VARS:
        env.pop(var, None)
    return env


def quote(argv: Sequence[str | os.PathLike]) -> str:
    return shlex.join(str(a) for a in argv)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Kill a child started with start_new_session=True, and everything it started."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    kill_group(proc)  # whatever is left of the group (and the child itself, if still up)
    proc.wait()


class Runner:
    """Runs commands; with dry_run it prints them and pretends they succeeded."""

    def __init__(self, dry_run: bool = False, echo: Callable[[str], None] | None = None):
        self.dry_run = dry_run
        self.echo = echo or (lambda line: print(line, file=sys.stderr))
        self.commands: list[str] = []

    def run(self, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None,
            env: dict[str, str] | None = None, timeout: float | None = None,
            log: Path | None = None, on_line: Callable[[str], None] | None = None,
            input_text: str | None = None, always: bool = False, tail_lines: int = 200,
            out_file: Path | None = None) -> Result:
        """Run argv to completion.

        `always` runs the command even in dry-run mode (read-only queries such as
        `git rev-parse` that later commands depend on). `out_file`: the command's stdout
        goes there as it is (bytes: cpio's archive); the output is then its stderr.
        """
        argv = [str(a) for a in argv]
        shown = quote(argv) + (f"   (in {cwd})" if cwd else "")
        self.commands.append(shown)
        if self.dry_run and not always:
            self.echo(f"+ {shown}")
            return Result(argv, 0, "", 0.0)
        full_env = clean_env()
        if env:
            full_env.update(env)
        start = time.monotonic()
        logf = open(log, "a", encoding="utf-8", errors="replace", buffering=1) if log else None
        if logf:
            logf.write(f"+ {shown}\n")
            logf.flush()
        tail: deque[str] = deque(maxlen=tail_lines)
        captured: list[str] = []
        outf = open(out_file, "wb") if out_file else None
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                stdout=outf or subprocess.PIPE,
                stderr=subprocess.PIPE if outf else subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_watched(_WATCHDOG.ensure()),
                text=True,
                errors="replace",
            )
        except FileNotFoundError as exc:
            if logf:
                logf.close()
            return Result(argv, 127, str(exc), 0.0, tail=[str(exc)])
        finally:
            if outf:
                outf.close()  # the child has its own copy
        timed_out = threading.Event()

        def reader() -> None:
            stream = proc.stderr if out_file else proc.stdout
            assert stream is not None
            for line in stream:
                if logf:
                    logf.write(line)
                if not log:
                    captured.append(line)
                tail.append(line.rstrip("\n"))
                if on_line:
                    on_line(line.rstrip("\n"))

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            if input_text is not None:
                assert proc.stdin is not None
                try:
                    proc.stdin.write(input_text)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out.set()
                kill_group(proc)
                proc.wait()
        except BaseException:
            # Ctrl-C, SIGTERM or anything else: never leave the child (make, git) behind.
            # SIGTERM first, so that make deletes the targets it was writing (a half-written
            # .o newer than its source would pass for up to date next time); then SIGKILL.
            stop_group(proc)
            raise
        finally:
            unwatch_group(proc.pid)
            t.join(timeout=5)
            if logf:
                if timed_out.is_set():
                    logf.write(f"orch: timed out after {timeout}s, process group killed\n")
                logf.close()
        output = "".join(captured) if not log else "\n".join(tail)
        return Result(
            argv,
            proc.returncode,
            output,
            time.monotonic() - start,
            timed_out=timed_out.is_set(),
            tail=list(tail),
        )

    def check(self, argv: Sequence[str | os.PathLike], error: type[Exception], what: str,
              **kw) -> Result:
        """Run and raise `error(what: last line)` on failure."""
        res = self.run(argv, **kw)
        if not res.ok:
            last = next((ln for ln in reversed(res.tail) if ln.strip()), "")
            why = "timed out" if res.timed_out else f"exit {res.returncode}"
            raise error(f"{what} failed ({why}): {last.strip()}")
        return res


    def spawn(self, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None,
              env: dict[str, str] | None = None, stdin=subprocess.DEVNULL,
              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text: bool = False,
              grace: float = 5.0, terminal: bool = False) -> Child:
        """Start a long-lived child (QEMU, lava-run), watched until its `Child` stops it (in
        dry-run mode too: callers spawn nothing there). `terminal`: a person's program on
        orch's terminal (an interactive ssh): stdio inherited, its own group holding the
        terminal's foreground while it runs (Ctrl-C and window sizes reach it, not orch)."""
        argv = [str(a) for a in argv]
        self.commands.append(quote(argv) + (f"   (in {cwd})" if cwd else ""))
        tty = _foreground_tty() if terminal else None
        if terminal:
            stdin = stdout = stderr = None
        watched = _watched(_WATCHDOG.ensure(), grace)
        kw = {"preexec_fn": _take_terminal(tty, watched)} if tty is not None else \
            {"start_new_session": True, "preexec_fn": watched}
        proc = subprocess.Popen(argv, cwd=cwd, env={**clean_env(), **(env or {})}, stdin=stdin,
                                stdout=stdout, stderr=stderr, text=text,
                                errors="replace" if text else None, **kw)
        return Child(proc, argv, grace, tty)


class Child:
    """A child from `Runner.spawn`: `proc` is its Popen (stdout, poll, returncode...). Its
    `with` block (or `stop`) ends it and its group: SIGTERM, `grace` s, SIGKILL (grace 0:
    SIGKILL at once)."""

    def __init__(self, proc: subprocess.Popen, argv: list[str], grace: float,
                 tty: int | None = None):
        self.proc, self.argv, self.grace, self.tty = proc, argv, grace, tty

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, grace: float | None = None) -> None:
        """End the child and whatever is left of its group; idempotent."""
        grace = self.grace if grace is None else grace
        if self.proc.poll() is None and grace > 0:
            stop_group(self.proc, grace)
        kill_group(self.proc)
        self.proc.wait()
        unwatch_group(self.proc.pid)
        if self.tty is not None:  # orch's own group holds the terminal again
            _give_terminal(self.tty, os.getpgrp())
            self.tty = None


def _foreground_tty() -> int | None:
    """orch's stdin when it is the terminal whose foreground orch holds, else None."""
    try:
        return 0 if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp() else None
    except OSError:
        return None


def _give_terminal(tty: int, pgid: int) -> None:
    """A background group may hand a terminal's foreground on only with SIGTTOU ignored."""
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(tty, pgid)
    finally:
        signal.signal(signal.SIGTTOU, old)


def _take_terminal(tty: int, watched: Callable[[], None]) -> Callable[[], None]:
    def in_child() -> None:  # before exec: its own group, in the foreground of `tty`
        os.setpgid(0, 0)
        watched()
        _give_terminal(tty, os.getpgrp())
    return in_child


def _watched(fd: int, grace: float | None = None) -> Callable[[], None]:
    """The child hands its new group to the watchdog itself, after setsid and before exec
    (the pipe's end is still open then; close-on-exec shuts it at exec). Handed over by the
    parent after Popen returned, a group started by an orch killed in between (seen under
    load, in tests/base/test_runner.py) was nobody's: it ran on."""
    tail = b"\n" if grace is None else f" {grace}\n".encode()

    def in_child() -> None:
        # SIGPIPE is back to its default here: a watchdog that someone killed must not
        # kill the child with it.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        try:
            os.write(fd, b"+%d" % os.getpgrp() + tail)  # one write under PIPE_BUF: atomic
        except OSError:
            pass
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return in_child


# --- the watchdog: no child of orch outlives it ------------------------------------------

GRACE = 3.0  # seconds between the watchdog's SIGTERM and its SIGKILL

_WATCHDOG_CODE = r"""
import os, signal, sys, time
groups, buf = {}, b""
while True:
    try:
        chunk = os.read(0, 4096)
    except InterruptedError:
        continue
    if not chunk:
        break
    buf += chunk
    *lines, buf = buf.split(b"\n")
    for ln in lines:
        if ln[:1] == b"+":  # "+PGID [GRACE]"
            g, _, grace = ln[1:].partition(b" ")
            groups[int(g)] = float(grace or sys.argv[1])
        elif ln[:1] == b"-":
            groups.pop(int(ln[1:]), None)
def kill(g, sig):
    try:
        os.killpg(g, sig)
        return True
    except OSError:
        return False
now = time.monotonic()
left = {g: now + grace for g, grace in groups.items() if kill(g, signal.SIGTERM)}
while left:
    time.sleep(0.05)
    for g, end in list(left.items()):
        if not kill(g, 0):
            del left[g]
        elif time.monotonic() >= end:
            kill(g, signal.SIGKILL)
            del left[g]
"""


class _Watchdog:
    """One per orch process, started on first use (see the module's docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.pid: int | None = None
        self.owner = 0  # the process that started it (a fork must start its own)

    def _start(self) -> int:
        r, w = os.pipe()  # both ends non-inheritable: no other child keeps it open
        proc = subprocess.Popen([sys.executable, "-S", "-c", _WATCHDOG_CODE, str(GRACE)],
                                stdin=r, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
        os.close(r)
        self.fd, self.pid, self.owner = w, proc.pid, os.getpid()
        proc.returncode = 0  # never waited for: it outlives this process by design
        return w

    def ensure(self) -> int:
        """The pipe to the watchdog, started now if this process has none yet."""
        with self.lock:
            if self.fd is None or self.owner != os.getpid():
                self._start()
            assert self.fd is not None
            return self.fd

    def send(self, line: str) -> None:
        fd = self.ensure()
        with self.lock:
            try:
                os.write(fd, line.encode())
            except OSError:
                pass


_WATCHDOG = _Watchdog()


def watch_group(pgid: int, grace: float | None = None) -> None:
    """The process group `pgid` (a child started with start_new_session=True) is killed
    when orch ends, however it ends, unless `unwatch_group` said it is gone: SIGTERM, then
    SIGKILL after `grace` s (default GRACE)."""
    _WATCHDOG.send(f"+{pgid}\n" if grace is None else f"+{pgid} {grace}\n")


def unwatch_group(pgid: int) -> None:
    _WATCHDOG.send(f"-{pgid}\n")


def watchdog_pid() -> int | None:
    return _WATCHDOG.pid
