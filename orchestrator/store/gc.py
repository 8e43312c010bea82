"""`orch gc`: keep the cache in bounds; and the cache's size by part, for `orch doctor`.

What goes:
- worktrees whose origin is gone: the shared clone of a checkout that no longer exists
  (a commit bisection of a temporary clone leaves 1.3 GB behind), a tarball import whose
  tarball was removed or replaced (a new linux-source package), a worktree with no clone;
- kernels, selftest builds and initramfs images not used for `--days` days;
- ccache, trimmed down to `--ccache-max`;
- leftovers of interrupted runs (half-written store entries) older than a day.

What stays: anything a running orch holds. A run holds its tree's lock for as long as it
uses the worktree, and a shared "use" lock on every store entry it uses (cache.hold); gc
takes each lock without waiting and skips the entry when it cannot.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.base.runner import Runner
from orchestrator.store import cache

DAY = 86400.0
STORES = ("kernels", "selftests", "kselftests", "initramfs")


def du(path: Path) -> int:
    """Bytes used under path (du -sb; 0 when it does not exist)."""
    if not path.exists() and not path.is_symlink():
        return 0
    r = Runner().run(["du", "-sb", "--", str(path)])
    # Its stderr (a file it cannot read) comes in the same output: the total is "N\tpath".
    sizes = [m.group(1) for ln in r.tail if (m := re.match(r"(\d+)\t", ln))]
    return int(sizes[-1]) if sizes else 0


def human(n: float) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"


def ccache_dir() -> Path:
    env = os.environ.get("CCACHE_DIR")
    return Path(env) if env else cache.cache_root() / "ccache"


@dataclass
class Part:
    name: str
    size: int
    entries: list[tuple[str, int]] = field(default_factory=list)


def usage() -> list[Part]:
    """The cache's size by part; for work/ (worktrees, build dirs) also per tree."""
    root = cache.cache_root()
    parts: list[Part] = []
    names = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    for name in ["work", "trees", *STORES, "ccache"] + [n for n in names if n not in (
            "work", "trees", *STORES, "ccache")]:
        path = ccache_dir() if name == "ccache" else root / name
        part = Part(name, du(path))
        if name == "work" and path.is_dir():
            part.entries = sorted(((e.name, du(e)) for e in path.iterdir()),
                                  key=lambda x: -x[1])
        elif name in STORES and path.is_dir():
            part.entries = [(e.name, 0) for e in path.iterdir()]
        parts.append(part)
    return parts


def print_usage(out=print) -> int:
    parts = usage()
    total = sum(p.size for p in parts)
    out(f"cache: {cache.cache_root()}  {human(total)}")
    for p in parts:
        extra = ""
        if p.name in STORES:
            extra = f"  ({len(p.entries)} entries)"
        elif p.name == "ccache" and ccache_dir() != cache.cache_root() / "ccache":
            extra = f"  ({ccache_dir()}, from CCACHE_DIR)"
        out(f"  {p.name:12} {human(p.size):>8}{extra}")
        if p.name == "work":
            for name, size in p.entries:
                out(f"    {name:40} {human(size):>8}")
    return total


# --- what is stale ----------------------------------------------------------------------

class Unreadable(Exception):
    """git could not say whether a clone has an origin: the clone is kept."""


def import_origin_gone(wt: Path) -> str | None:
    """A tarball import (work/NAME-KEY with .git/orch-imported): why it is stale, or None."""
    marker = wt / ".git" / "orch-imported"
    tarball = Path(marker.read_text().strip())
    if not tarball.exists():
        return f"its tarball {tarball} is gone"
    st = tarball.stat()
    key = cache.digest(str(tarball), str(st.st_size), str(int(st.st_mtime)))[:12]
    if not wt.name.endswith(f"-{key}"):
        return f"its tarball {tarball} was replaced (re-imported under another key)"
    return None


def clone_origin_gone(repo: Path) -> str | None:
    """A shared clone (trees/NAME-KEY.git) of a user's checkout: why it is stale, or None."""
    r = Runner().run(["git", "--git-dir", str(repo), "config", "remote.origin.url"])
    if r.returncode == 1 and not r.output.strip():  # git's "key not set", and only that
        return "it has no origin"
    lines = [ln.strip() for ln in r.tail if ln.strip()]
    if not r.ok or not lines:
        raise Unreadable(f"git config remote.origin.url failed (exit {r.returncode}): "
                         f"{lines[-1] if lines else 'no output'}")
    origin = lines[-1]
    if not Path(origin).exists():
        return f"its origin {origin} is gone"
    return None


@dataclass
class Removal:
    path: Path
    why: str
    size: int = 0
    keep: bool = False  # not removed: `why` says why gc cannot tell (said in one line)


def candidates(days: float, now: float | None = None) -> list[tuple[Removal, list[Path]]]:
    """(what to remove and why, the locks that must all be free to remove it)."""
    root = cache.cache_root()
    now = now or time.time()
    locks = root / "locks"
    out: list[tuple[Removal, list[Path]]] = []
    work, trees = root / "work", root / "trees"
    clones = {p.name[:-4]: p for p in trees.glob("*.git")} if trees.is_dir() else {}
    for key, repo in sorted(clones.items()):
        try:
            why = clone_origin_gone(repo)
        except Unreadable as exc:
            out.append((Removal(repo, f"{exc}; its origin is unknown", keep=True), []))
            continue
        if why:
            lock = [locks / f"work-{key}.lock"]
            out.append((Removal(repo, f"shared clone: {why}"), lock))
            if (work / key).exists():
                out.append((Removal(work / key, f"worktree of {repo.name}: {why}"), lock))
    if work.is_dir():
        for wt in sorted(work.iterdir()):
            # A run holds the tree's lock; an import in progress (no marker yet) its own.
            lock = [locks / f"work-{wt.name}.lock",
                    locks / f"import-{wt.name.rsplit('-', 1)[-1]}.lock"]
            if wt.name.startswith("verify-"):  # verify-PID-ENTRY: orch gc --verify's own
                if not _alive(wt.name.split("-")[1]):
                    out.append((Removal(wt, "scratch worktree of a stopped gc --verify"), []))
                continue
            if wt.name.startswith(".staging-"):
                if now - wt.stat().st_mtime > DAY:
                    out.append((Removal(wt, "an interrupted tarball import"), []))
                continue
            if (wt / ".git" / "orch-imported").is_file():
                why = import_origin_gone(wt)
                if why:
                    out.append((Removal(wt, f"tarball import: {why}"), lock))
            elif wt.name not in clones and wt.is_dir():
                out.append((Removal(wt, "worktree whose clone is gone"), lock))
    for part in STORES:
        d = root / part
        if not d.is_dir():
            continue
        for e in sorted(d.iterdir()):
            if ".tmp" in e.name or e.name.startswith("."):
                if now - e.stat().st_mtime > DAY:
                    out.append((Removal(e, "left by an interrupted run"), []))
                continue
            age = (now - cache.last_used(e)) / DAY
            if age > days:
                out.append((Removal(e, f"unused for {age:.0f} days"), [cache.use_lock(e)]))
    return out


def trim_ccache(cap: str, dry_run: bool, out=print) -> None:
    d = ccache_dir()
    if not d.is_dir() or not shutil.which("ccache"):
        return
    before = du(d)
    if dry_run:
        out(f"  would trim ccache {d} ({human(before)}) to at most {cap}")
        return
    env = {"CCACHE_DIR": str(d), "CCACHE_MAXSIZE": cap}
    Runner().run(["ccache", "--cleanup"], env=env)
    after = du(d)
    out(f"  ccache {d}: {human(before)} -> {human(after)} (cap {cap})")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def gc(days: float = 14, ccache_max: str = "5G", dry_run: bool = False, out=print) -> int:
    root = cache.cache_root()
    if not root.is_dir():
        out(f"cache: {root} does not exist; nothing to do")
        return 0
    before = sum(p.size for p in usage())
    out(f"cache: {root}  {human(before)}")
    freed = 0
    for rem, locks in candidates(days):
        if rem.keep:
            out(f"  kept {rem.path}: {rem.why}")
            continue
        rem.size = du(rem.path)
        if dry_run:
            out(f"  would remove {rem.path} ({human(rem.size)}): {rem.why}")
            continue
        with ExitStack() as stack:
            if not all(stack.enter_context(cache.try_exclusive(lk)) for lk in locks):
                out(f"  kept {rem.path}: in use by a running orch")
                continue
            remove(rem.path)
        freed += rem.size
        out(f"  removed {rem.path} ({human(rem.size)}): {rem.why}")
    trim_ccache(ccache_max, dry_run, out)
    after = sum(p.size for p in usage())
    out(f"cache: {human(before)} -> {human(after)}"
        + (f" ({human(freed)} in removed entries)" if freed else ""))
    return 0


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
