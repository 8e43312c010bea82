"""What a build dir's files were compiled from, and the proof a kernel needs to be stored.

make trusts timestamps: an object newer than its source passes for up to date. That holds
only while every object was compiled from the source that is there now, or from one that
is older than it. Two things break it:
- a writer still at work after the worktree moved on: make orphaned by a SIGKILL of orch,
  which wrote objects compiled from the old sources after the next run's checkout (the
  stale kernel of #27; base/runner.py's watchdog now kills such a make with orch);
- a build that stopped half-way (orch killed, the machine lost): its objects belong to a
  tree that was never stored, and an object cut off mid-write may be left behind.

So each build dir records in `STATE` the trees its objects may come from (`trees`) and the
build in progress (`building`: its tree, its start, the tree lock holder's pid). Before
make (`prepare`):
- a build that never finished: every file it wrote (newer than its start) is removed;
- each source that differs between any recorded tree and the tree to build is touched, so
  no object of another tree can pass for up to date whatever its time stamp;
- a build dir with objects but no record (an older orch's): its objects are removed.
After make, `proof` checks, under the tree lock and before anything is stored, that the
worktree still holds the key's source tree, unmodified, that the build dir's .config is the
key's, that the image's banner carries the key's stamp and that no other build started in
the build dir meanwhile.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from orchestrator.base import files
from orchestrator.base.runner import Runner

STATE = ".orch-provenance.json"
KEEP = {STATE, ".config", ".orch-config-stamp"}  # written before a build starts


def read(builddir: Path) -> dict | None:
    try:
        data = json.loads((builddir / STATE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"trees": [], "unreadable": True}
    return data if isinstance(data, dict) else {"trees": [], "unreadable": True}


def write(builddir: Path, data: dict) -> None:
    builddir.mkdir(parents=True, exist_ok=True)
    files.write_text(builddir / STATE, json.dumps(data, indent=1))


def _has_objects(builddir: Path) -> bool:
    return (builddir / "vmlinux").exists() or any(builddir.glob("*/built-in.a"))


def latest_object(builddir: Path) -> float:
    """The newest mtime of the kernel's objects and links (not scripts/ and tools/, which
    the config stage builds before a build starts): a write newer than what the last build
    recorded was made by something that kept no record (an older orch, a bare make)."""
    newest = 0.0
    for dirpath, dirs, names in os.walk(builddir):
        if dirpath == str(builddir):
            dirs[:] = [d for d in dirs if d not in ("scripts", "tools")]
        for name in names:
            if name.endswith((".o", ".a")) or name.startswith("vmlinux"):
                try:
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
                except OSError:
                    continue
    return newest


def remove_newer(builddir: Path, since: float) -> int:
    """Remove every file under `builddir` written at or after `since` (kept: KEEP)."""
    n = 0
    for dirpath, _dirs, names in os.walk(builddir):
        for name in names:
            if name in KEEP and dirpath == str(builddir):
                continue
            p = os.path.join(dirpath, name)
            try:
                if os.lstat(p).st_mtime >= since:
                    os.unlink(p)
                    n += 1
            except OSError:
                continue
    return n


def remove_objects(builddir: Path) -> int:
    """Everything make made (objects, links, generated files); .config stays."""
    return remove_newer(builddir, 0.0)


def changed_paths(wt: Path, old: str, new: str, runner: Runner) -> list[str]:
    res = runner.run(["git", "-C", str(wt), "diff-tree", "-r", "--name-only", "--no-renames",
                      "-z", old, new], always=True, tail_lines=0)
    if not res.ok:
        return []
    return [p for p in res.output.split("\0") if p]


def prepare(wt: Path, builddir: Path, tree: str, runner: Runner, note=None) -> dict:
    """Make the build dir safe for make to build `tree` incrementally (see the module's
    docstring); returns what was done, for kernel.json. `note(line)` says it."""
    say = note or (lambda line: None)
    state = read(builddir)
    done: dict = {"removed": 0, "touched": 0}
    if state is not None and not state.get("building") and "latest" in state \
            and latest_object(builddir) > float(state["latest"]):
        state = None  # written since the last recorded build, by something that did not say
    if state is None or state.get("unreadable"):
        if _has_objects(builddir):
            done["removed"] = remove_objects(builddir)
            say(f"build dir {builddir.name}: no record of what its objects were compiled "
                f"from; removed them ({done['removed']} files), building from scratch")
        state = {"trees": []}
    trees = [t for t in state.get("trees", []) if t]
    building = state.get("building")
    if building:
        done["removed"] = remove_newer(builddir, float(building.get("started", 0)))
        trees.append(building.get("tree", ""))
        say(f"build dir {builddir.name}: the build of {building.get('tree', '?')[:12]} "
            f"started there did not finish; removed the {done['removed']} files it wrote")
    now = time.time()
    touched: set[str] = set()
    for old in dict.fromkeys(t for t in trees if t and t != tree):
        paths = changed_paths(wt, old, tree, runner)
        if not paths and not runner.dry_run:
            # An unknown tree (its objects pruned by git gc): nothing says what differs.
            done["removed"] += remove_objects(builddir)
            say(f"build dir {builddir.name}: cannot compare with tree {old[:12]}; removed "
                f"its objects")
            touched.clear()
            break
        touched.update(paths)
    for p in touched:
        try:
            os.utime(wt / p, (now, now))
        except OSError:
            continue  # deleted in the new tree
    done["touched"] = len(touched)
    write(builddir, {"trees": trees, "building": {"tree": tree, "started": now,
                                                   "pid": os.getpid()}})
    return done


def finished(builddir: Path, tree: str, ok: bool) -> None:
    """make ended by itself: a failed make deleted the targets it was writing (kbuild's
    .DELETE_ON_ERROR), so its objects are `tree`'s, as a finished build's are."""
    state = read(builddir) or {"trees": []}
    trees = [tree] if ok else [*[t for t in state.get("trees", []) if t], tree]
    write(builddir, {"trees": list(dict.fromkeys(trees)), "latest": latest_object(builddir)})


def proof(wt: Path, builddir: Path, tree: str, config_text: str, stamp: str,
          runner: Runner) -> str | None:
    """Why the kernel in `builddir` cannot be stored under a key made of `tree` and
    `config_text` (None: it can). Run under the tree lock, after make."""
    res = runner.run(["git", "-C", str(wt), "rev-parse", "HEAD^{tree}"], always=True)
    head = res.output.strip()
    if not res.ok or head != tree:
        return (f"the worktree moved during the build: it holds tree {head[:12] or '?'}, "
                f"the key was made of {tree[:12]}")
    res = runner.run(["git", "-C", str(wt), "status", "--porcelain", "-z",
                      "--untracked-files=normal"], always=True, tail_lines=0)
    if not res.ok:
        return f"git status failed in {wt}: {res.output.strip()[:200]}"
    dirty = [p[3:] for p in res.output.split("\0") if len(p) > 3]
    if dirty:
        return (f"the worktree's files are not its tree's: {len(dirty)} changed "
                f"({', '.join(dirty[:3])})")
    try:
        have = (builddir / ".config").read_text()
    except OSError:
        have = ""
    if have != config_text:
        return "the build dir's .config is not the one the key was made of"
    try:
        with open(builddir / "vmlinux", "rb") as f:
            if f"orch@{stamp})".encode() not in f.read():
                return f"vmlinux does not carry the key's stamp ({stamp})"
    except OSError as exc:
        return f"vmlinux cannot be read ({exc.strerror})"
    building = (read(builddir) or {}).get("building") or {}
    if building.get("pid") != os.getpid() or building.get("tree") != tree:
        return "another build started in the build dir meanwhile"
    return None
