"""Where orch keeps imported trees, worktrees, build dirs, kernels, keys and downloads."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout

from orchestrator.base import files


def cache_root() -> Path:
    env = os.environ.get("ORCH_CACHE")
    if env:
        return Path(env).resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "orch"


def subdir(*parts: str) -> Path:
    p = cache_root().joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def digest(*parts: str | bytes) -> str:
    """Stable sha256 of the given parts (length-prefixed, so ('ab','c') != ('a','bc'))."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(str(len(b)).encode() + b":" + b)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# What a lock guards, by its file's prefix (locks/work-KEY.lock...), for the waiting line.
LOCK_NAMES = {"work": "tree lock", "import": "tarball import lock", "clone": "clone lock",
              "kselftests": "kselftest build lock"}


@contextmanager
def locked(path: Path, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Exclusive lock (filelock, on flock), so two orch runs never share a worktree or
    build dir. A run that must wait says so first, in one line naming the holder (its PID
    and command, from the lock's side file PATH.holder): a build can hold it for minutes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        what = LOCK_NAMES.get(path.name.split("-", 1)[0], f"lock {path}")
        (say or _stderr)(f"orch: waiting for the {what} held by {holder(path)}")
        lock.acquire()
    try:
        try:
            files.write_text(_holder_file(path), f"{os.getpid()} {_command()}\n")
        except OSError:
            pass
        yield
    finally:
        lock.release()


def holder(path: Path) -> str:
    """Who holds the lock at `path`, as its side file says: "PID N (orch run ...)"."""
    try:
        pid, _, command = _holder_file(path).read_text().strip().partition(" ")
        if Path(f"/proc/{int(pid)}").exists():
            return f"PID {pid} ({command})"
    except (OSError, ValueError):
        pass
    return "another process"


def _holder_file(path: Path) -> Path:
    return path.with_name(path.name + ".holder")


def _command() -> str:
    argv = list(sys.argv) or ["?"]
    if os.path.basename(argv[0]) == "orch" or argv[0].endswith("/orch"):
        argv[0] = "orch"
    return shlex.join(argv)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- what a running orch uses: `orch gc` never removes it ---------------------------------

USED = "last-used"  # marker file in a store entry: its mtime is the entry's last use
_HELD: dict[str, int] = {}


def use_lock(entry: Path) -> Path:
    """The lock file that says "in use" for a cache entry (kernels/x86_64-KEY, ...)."""
    return cache_root() / "locks" / f"use-{entry.parent.name}-{entry.name}.lock"


def hold(entry: Path) -> None:
    """Hold a shared lock on `entry` until this process exits: `orch gc` takes the lock
    exclusively (without waiting) before it removes an entry, so it skips whatever a
    running orch holds, and an orch starting meanwhile waits for gc before it looks."""
    key = str(entry)
    if key in _HELD:
        return
    lock = use_lock(entry)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _HELD[key] = fd


def touch_used(entry: Path) -> None:
    """Record a use: gc's "unused for N days" reads this, not the entry's creation."""
    try:
        if entry.is_dir():
            (entry / USED).touch()
        else:
            os.utime(entry)
    except OSError:
        pass


def last_used(entry: Path) -> float:
    for p in (entry / USED, entry):
        try:
            return p.stat().st_mtime
        except OSError:
            continue
    return 0.0


@contextmanager
def try_exclusive(lock: Path) -> Iterator[bool]:
    """Yields True with the lock held exclusively, False when someone holds it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --- figures of earlier runs (how long a stage took, how many steps): progress estimates ---

def recall(name: str) -> dict:
    """What `remember(name, ...)` last recorded ({} when nothing, or unreadable)."""
    try:
        data = json.loads((cache_root() / "history" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember(name: str, **figures: float | int) -> None:
    """Record a stage's figures for the next run's estimate (best effort: never fails)."""
    try:
        files.write_text(subdir("history") / f"{name}.json", json.dumps(figures))
    except OSError:
        pass
