"""Crash triage in a run: the kernel reports that failed a binary's testcases become
records with file:line and the patch that wrote the line (testing/triage.py), decoded
from orch's worktree at the tested commit (see `_triage_at_head`)."""

from __future__ import annotations

import time

from orchestrator.kernel import dirty as dirtymod
from orchestrator.kernel import tree as treemod
from orchestrator.run.state import ArchState, RunState, builddir
from orchestrator.testing import testrun
from orchestrator.testing import triage as triagemod


def triage(run: RunState, st: ArchState, s: testrun.Suite) -> None:
    """Kernel reports that failed a testcase: records with file:line and the patch."""
    if not any(c.status == "fail" and c.kind in ("dmesg_clean", "crash") for c in s.cases):
        return
    names = [p.name.removesuffix(".patch") for p in run.patches] + \
        ([dirtymod.NAME] if run.dirty else [])
    src = triagemod.Source(run.tree.repo if run.tree else None, run.head_commit,
                           vmlinux=st.kernel.vmlinux if st.kernel else None,
                           builddir=builddir(run, st) if run.worktree else None,
                           srctree=run.worktree,
                           cross_compile=st.arch.cross_compile())
    if src.repo and run.base_commit:
        src.patches = triagemod.patch_commits(src.repo, run.base_commit, run.head_commit,
                                              names, run.runner)
        src.touched = triagemod.touched(src.repo, run.base_commit, run.head_commit,
                                        run.runner)
    start = time.monotonic()
    n = _triage_at_head(run, s, src)
    if n:
        first = next(c for c in s.cases if c.reports)
        run.progress.line(f"[{st.arch.name}] {s.binary}: {first.message.split('; ')[0]} "
                          f"(triage {time.monotonic() - start:.1f}s)")


def _triage_at_head(run: RunState, s: testrun.Suite, src: triagemod.Source) -> int:
    """Objects are compiled again from orch's worktree (debuginfo.py): it must hold the
    tested sources while they compile. Usually it does (nothing else ran on the tree since
    this run's apply); when another run checked out something else, or does during the
    compile, the triage is done (again) under the tree lock with the tested commit checked
    out again (any run resets the worktree to its own commit first)."""
    wt, r = run.worktree, run.runner
    kept = [(c, c.message) for c in s.cases]

    def attempt() -> int:
        for c, message in kept:
            c.message, c.reports = message, []
        return triagemod.triage_suite(s, src, r)

    def at_head() -> bool:
        head = r.run(["git", "-C", str(wt), "rev-parse", "HEAD^{tree}"], always=True)
        clean = r.run(["git", "-C", str(wt), "diff", "--quiet", "HEAD"], always=True)
        return head.output.strip() == run.source_tree and clean.ok

    if wt is None or run.tree is None or src.vmlinux or not src.builddir:
        return attempt()
    if at_head():
        n = attempt()
        if at_head():
            return n
    with treemod.tree_lock(run.tree):
        if not at_head():
            treemod.prepare_worktree(run.tree, run.head_commit, r)
        return attempt()
