"""The tree as it is on disk: a user's checkout with uncommitted edits.

orch tests what is on disk by default (as virtme-ng, tuxmake and kunit.py do): tracked
modifications (staged or not) and untracked files that .gitignore does not ignore become
one final change after the series. The checkout is only read:

- a copy of its index in orch's cache (GIT_INDEX_FILE) takes `git add -A`, so the
  user's own index and staging are untouched;
- the blobs and the tree that `git add`/`write-tree` make go into orch's shared clone
  (GIT_OBJECT_DIRECTORY), which already borrows the checkout's objects: nothing is written
  to the user's repository;
- the change is the diff from the checkout's HEAD to that tree (`git diff --binary`),
  applied and committed in orch's worktree after the series, so the source tree object
  (and the kernel's store key) changes with every edit, and make rebuilds incrementally.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from orchestrator.base.errors import ApplyError
from orchestrator.base.runner import Runner
from orchestrator.kernel.tree import Tree, env_for_commits
from orchestrator.store import cache

SUBJECT = "orch: uncommitted changes in "
NAME = "dirty"  # how the change is named: after the series (`uffd-move+dirty`), a patch


@dataclass
class Dirty:
    """A checkout's uncommitted state, relative to its HEAD."""

    checkout: Path
    head: str  # the checkout's HEAD commit
    tree: str  # the tree object of what is on disk (in orch's clone)
    files: list[str]  # the paths that differ from HEAD
    diff: bytes  # `git diff --binary HEAD TREE`

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.diff).hexdigest()

    def describe(self) -> str:
        """`2 files: mm/a.c, mm/b.c` (the first three)."""
        n = len(self.files)
        return f"{n} file{'s' if n != 1 else ''}: " + ", ".join(self.files[:3]) + \
            (", ..." if n > 3 else "")


def _git_path(checkout: Path, what: str, runner: Runner) -> Path:
    res = runner.run(["git", "-C", str(checkout), "rev-parse", "--path-format=absolute",
                      "--git-path", what], always=True)
    return Path(res.output.strip().splitlines()[-1])


def state(tree: Tree, runner: Runner) -> Dirty | None:
    """What differs on disk from the checkout's HEAD (None: nothing, or not a checkout)."""
    if tree.kind != "git":
        return None
    co = tree.origin
    g = ["git", "-C", str(co)]
    head = runner.run([*g, "rev-parse", "--verify", "-q", "HEAD^{commit}"], always=True)
    if not head.ok:
        return None
    head_commit = head.output.strip().splitlines()[-1]
    tmp = cache.subdir("tmp") / f"index-{tree.key}-{os.getpid()}"
    index = _git_path(co, "index", runner)
    try:
        if index.is_file():
            shutil.copyfile(index, tmp)  # its stat data: `add -A` only hashes what changed
        env = {"GIT_INDEX_FILE": str(tmp), "GIT_OBJECT_DIRECTORY": str(tree.repo / "objects"),
               "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(_git_path(co, "objects", runner))}
        if not index.is_file():
            runner.run([*g, "read-tree", "HEAD"], env=env, always=True)
        add = runner.run([*g, "add", "-A"], env=env, always=True)
        wt = runner.run([*g, "write-tree"], env=env, always=True)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.lock").unlink(missing_ok=True)
    if not add.ok or not wt.ok:
        raise ApplyError(f"--tree {tree.spec}: cannot read its uncommitted changes: "
                         f"{(add.tail or wt.tail or [''])[-1]}")
    on_disk = wt.output.strip().splitlines()[-1]
    r = ["git", "--git-dir", str(tree.repo)]
    names = runner.run([*r, "diff", "--name-only", "--no-renames", head_commit, on_disk],
                       always=True)
    files = [ln for ln in names.output.splitlines() if ln.strip()]
    if not files:
        return None
    out = cache.subdir("tmp") / f"dirty-{tree.key}-{os.getpid()}.diff"
    try:
        # --output: the bytes as git wrote them (a file need not be UTF-8).
        runner.check([*r, "diff", "--binary", "--no-renames", "--full-index",
                      f"--output={out}", head_commit, on_disk], ApplyError,
                     f"git diff of {co}", always=True)
        diff = out.read_bytes()
    finally:
        out.unlink(missing_ok=True)
    return Dirty(co, head_commit, on_disk, files, diff)


def apply(d: Dirty, wt: Path, saved: Path, runner: Runner, log: Path) -> None:
    """Apply and commit the change in orch's worktree (after the series); `saved` keeps
    the diff (it is in the run's output)."""
    saved.write_bytes(d.diff)
    g = ["git", "-C", str(wt)]
    res = runner.run([*g, "apply", "-3", "--index", "--whitespace=nowarn", str(saved)],
                     log=log)
    if res.ok:
        res = runner.run([*g, "commit", "-q", "--no-verify", "-m", f"{SUBJECT}{d.checkout}"],
                         env=env_for_commits(), log=log)
    if not res.ok:
        last = next((ln for ln in reversed(res.tail) if ln.strip()), "")
        raise ApplyError(f"the uncommitted changes in {d.checkout} ({d.describe()}) do not "
                         f"apply after the series: {last.strip()}; worktree kept at {wt} "
                         f"(--committed tests the committed state only)")
