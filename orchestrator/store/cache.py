"""Where orch keeps imported trees, worktrees, build dirs, kernels, keys and downloads."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive advisory lock, so two orch runs never share a worktree or build dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
