"""`orch run --coverage` on the machine side and after it: the kernel's gcov counters are
taken once after boot (as the pseudo-binary `(boot)`), then reset before each test binary
and taken after it (testing/gcovdata.py), into ARCH/coverage/gcda/BINARY.tar; the
`coverage` stage turns them into counts of the series' added lines (kernel/gcov.py), per
binary, with which binaries ran each line.

A target that runs the tests itself (LAVA) cannot hand the counters back yet: its cell
says so (`supported: false` and why), as does a machine whose kernel is not orch's build
(--no-deploy) or has no gcov data in debugfs.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from orchestrator.base.errors import OrchError
from orchestrator.kernel import coverage as covmod
from orchestrator.kernel import dirty as dirtymod
from orchestrator.kernel import gcov
from orchestrator.results import coverage as rescov
from orchestrator.run.state import ArchState, RunState
from orchestrator.testing import gcovdata
from orchestrator.testing import triage as triagemod

BOOT = "(boot)"  # what ran before the first test binary: the boot, orch's own commands
LAVA_WHY = ("coverage under LAVA is not supported yet: the job runs the tests itself and "
            "nothing brings the guest's gcov data back")


def unsupported(st: ArchState, why: str) -> None:
    st.coverage = {"supported": False, "why": why, "profiled": [], "lines": {}}


def _tar(run: RunState, st: ArchState, binary: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.+()-]", "_", binary)
    return run.out / st.arch.name / "coverage" / "gcda" / f"{name}.tar"


def _take(run: RunState, st: ArchState, binary: str) -> None:
    assert st.machine is not None and st.machine.session is not None
    try:
        st.gcda[binary] = gcovdata.collect(st.machine.session, _tar(run, st, binary))
    except OrchError as exc:
        run.progress.error(f"orch: [{st.arch.name}] coverage: no gcov data after {binary}: "
                           f"{exc}")


def start(run: RunState, st: ArchState) -> None:
    """Before the first binary: can this machine give gcov data? Then take what the boot
    ran, and reset."""
    if run.opts.coverage is None:
        return
    st.gcda, st.coverage, st.coverage_stopped = {}, None, ""
    m = st.machine
    if m is None or m.session is None:
        unsupported(st, LAVA_WHY if run.target.kind == "lava" else
                    f"no shell on the {run.target.kind} machine to read gcov data with")
    elif st.target_facts.get("deploy") == "none":
        unsupported(st, "--no-deploy tests the machine's own kernel: no notes of orch's "
                        "build describe it")
    else:
        why = gcovdata.prepare(m.session)
        if why:
            unsupported(st, why)
            return
        _take(run, st, BOOT)
        _reset(run, st, "the first test binary")
    if st.coverage:
        run.progress.error(f"orch: [{st.arch.name}] coverage: {st.coverage['why']}")


def _reset(run: RunState, st: ArchState, before_what: str) -> None:
    """Zero the counters; when that fails, take no more data: the next binary's would hold
    the previous one's counts too, credited to it."""
    assert st.machine is not None and st.machine.session is not None
    if not gcovdata.reset(st.machine.session):
        st.coverage_stopped = (f"the gcov counters could not be reset before {before_what}: "
                               f"no counts taken from then on")
        run.progress.error(f"orch: [{st.arch.name}] coverage: {st.coverage_stopped}")


def _taking(run: RunState, st: ArchState) -> bool:
    return (run.opts.coverage is not None and st.coverage is None and st.machine is not None
            and not st.coverage_stopped)


def before(run: RunState, st: ArchState, binary: str) -> None:
    if _taking(run, st):
        _reset(run, st, binary)


def after(run: RunState, st: ArchState, binary: str) -> None:
    if _taking(run, st):
        _take(run, st, binary)


# --- the coverage stage --------------------------------------------------------------------

def series_lines(run: RunState) -> list[dict]:
    """The series' patches with the lines each added that are still in the tested tree
    (the same for every arch: computed once)."""
    if run.coverage_patches is not None:
        return run.coverage_patches
    assert run.tree is not None
    r, repo = run.runner, run.tree.repo
    names = [p.name for p in run.patches] + ([dirtymod.NAME] if run.dirty else [])
    commits = triagemod.patch_commits(repo, run.base_commit, run.head_commit, names, r)
    patches = [{"index": i + 1, "name": p.name, "subject": p.subject, "dirty": False,
                "lines": []} for i, p in enumerate(run.patches)]
    if run.dirty:
        patches.append({"index": len(patches) + 1, "name": dirtymod.NAME,
                        "subject": f"uncommitted changes in {run.dirty.checkout}",
                        "dirty": True, "lines": []})
    by_name = {p["name"]: p for p in patches}
    run.coverage_sources = {}
    for f in covmod.series_sources(repo, run.base_commit, run.head_commit, r):
        run.coverage_sources[f] = gcov.file_at(repo, run.head_commit, f, r)
        for line, text, patch in gcov.added_lines(repo, run.base_commit, run.head_commit,
                                                  f, commits, r):
            by_name[patch]["lines"].append({"file": f, "line": line, "text": text})
    run.coverage_patches = patches
    return patches


def stage(run: RunState, st: ArchState, work: Path) -> tuple[list[str], str]:
    """The scratch tree gcov needs for the cell's kernel (kernel/gcov.stage: the profiled
    files as tested, the build's notes) at `work`: the profiled files and the gcov to use.
    `orch fuzz --coverage` counts its batches with the same (fuzz/guide.py)."""
    assert st.kernel is not None and run.tree is not None
    profiled = (st.kernel.info().get("coverage") or {}).get("profiled", [])
    tool = gcov.gcov_tool(st.arch, run.versions["gcc"].get(st.arch.name, ""), run.runner)
    series_lines(run)  # the series' files as tested: coverage_sources
    sources = dict(run.coverage_sources or {})
    for f in profiled:
        if f not in sources:
            sources[f] = gcov.file_at(run.tree.repo, run.head_commit, f, run.runner)
    gcov.stage(work, st.kernel, sources)
    return profiled, tool


def analyse(run: RunState, st: ArchState | None) -> None:
    """The cell's counts of the series' added lines, per binary (the `coverage` stage)."""
    assert st is not None
    if run.opts.dry_run or (st.coverage is not None and not st.coverage["supported"]):
        return
    if not st.gcda:
        unsupported(st, "no gcov data was taken: "
                    + (st.coverage_stopped or "no read of the machine's counters worked"))
        run.progress.error(f"orch: [{st.arch.name}] coverage: {st.coverage['why']}")
        return
    a, r = st.arch.name, run.runner
    patches = series_lines(run)
    wanted = {(ln["file"], ln["line"]) for p in patches for ln in p["lines"]}
    work = run.out / a / "coverage" / "work"
    lines: dict[tuple[str, int], dict] = {}
    try:
        profiled, tool = stage(run, st, work)
        for binary, tar in st.gcda.items():
            counts = gcov.line_counts(work, gcovdata.members(tar, profiled), tool, r,
                                      log=run.log(a, "coverage.log"))
            for f, ls in counts.items():
                for n, (count, function) in ls.items():
                    if (f, n) not in wanted:
                        continue
                    e = lines.setdefault((f, n), {"count": 0, "ran_by": [],
                                                  "function": function})
                    e["count"] += count
                    if count > 0:
                        e["ran_by"].append(binary)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    st.coverage = {"supported": True, "why": st.coverage_stopped, "profiled": profiled,
                   "lines": lines}
    ran = sum(1 for e in lines.values() if e["count"] > 0)
    run.progress.line(f"[{a}] coverage: {ran} of the series' {len(lines)} executable added "
                      f"lines run ({rescov.pct(ran, len(lines))}), {len(st.gcda)} binaries")
