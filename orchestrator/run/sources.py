"""Where a run's tests come from, as records (`SOURCES`): orch's own selftests (one static
binary per selftests/*.c, built against the kernel's uAPI headers) and the kernel's own
kselftests (tools/testing/selftests of the tree under test, or of `--kselftest-tree`,
built with that tree's Makefiles). Each source checks its input in the check stage and,
as its own stage, adds the `Program`s the test stage runs (and what the machine needs for
them: a payload directory, bash). Adding a source is one record here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from orchestrator.base.errors import UsageError
from orchestrator.kernel import tree as treemod
from orchestrator.run.state import ArchState, RunState
from orchestrator.targets import rootfs
from orchestrator.testing import compile as selftests
from orchestrator.testing import kselftest
from orchestrator.testing import kselftest_build as ksbuild

# What a kselftest build reads of its tree: the tests and tools, the uAPI headers and the
# build system that installs them (scripts, Makefiles).
KSELFTEST_INPUTS = ["tools", "include/uapi", "arch/{arch}/include/uapi", "scripts", "Makefile"]


@dataclass(frozen=True)
class TestSource:
    """One source of tests. `stage`: the name of its stage (stages.py); `needs`: what that
    stage needs; `gives`: what it gives (rootfs and boot need it, when the source is
    wanted)."""

    name: str
    stage: str
    needs: tuple[str, ...]
    gives: str
    wanted: Callable[[RunState], bool]
    check: Callable[[RunState], None]
    build: Callable[[RunState, ArchState | None], None]


# --- orch's own ----------------------------------------------------------------------------

def own_wanted(run: RunState) -> bool:
    return str(run.opts.selftests) != "none"


def own_check(run: RunState) -> None:
    if own_wanted(run):
        selftests.sources(run.opts.selftests, run.opts.tests)
    elif not run.opts.kselftest:
        raise UsageError("--selftests none: and no --kselftest: there is nothing to run")


def own_build(run: RunState, st: ArchState | None) -> None:
    assert st is not None and st.kernel is not None
    st.tests = selftests.build(st.arch, run.opts.selftests, st.kernel.headers, st.kernel.key,
                               run.runner, run.log(st.arch.name, "selftests.log"),
                               run.opts.tests, progress=run.progress.status)
    st.programs[:0] = [kselftest.Program(t.name, "selftests", t.name, t.name,
                                         timeout=run.opts.test_timeout) for t in st.tests]


# --- the kernel's own ----------------------------------------------------------------------

def ks_wanted(run: RunState) -> bool:
    return bool(run.opts.kselftest)


def ks_check(run: RunState) -> None:
    run.kselftests = [kselftest.parse_request(t) for t in run.opts.kselftest]
    if run.opts.kselftest_tree and not run.kselftests:
        raise UsageError(f"--kselftest-tree {run.opts.kselftest_tree}: give --kselftest "
                         f"COLLECTION[:PROGRAM] too")
    if run.opts.kselftest_timeout is not None and not run.kselftests:
        raise UsageError("--kselftest-timeout: give --kselftest COLLECTION[:PROGRAM] too")


def kselftest_source_id(wt: Path, arch, runner) -> str:
    """What a kselftest build of `wt` depends on (KSELFTEST_INPUTS' content at HEAD): an
    edit elsewhere (the kernel's own .c files, a series that touches only mm/) keeps the
    cached build."""
    return treemod.source_id(wt, [p.format(arch=arch.kernel_arch) for p in KSELFTEST_INPUTS],
                             runner)


def _ks_tree(run: RunState) -> tuple[treemod.Tree, str]:
    """The tree and commit the kselftests come from: the tree under test as the run
    applied it (its series may bring selftests), or --kselftest-tree at its default base."""
    r = run.runner
    spec = run.opts.kselftest_tree
    if spec:
        tree = treemod.resolve(spec, r, progress=run.progress.line)
        if run.tree is None or tree.key != run.tree.key:
            return tree, treemod.resolve_base(tree, None, r)
    assert run.tree is not None
    return run.tree, run.head_commit


def ks_build(run: RunState, st: ArchState | None) -> None:
    """Build (or take from the cache) the collections asked for, for this arch, in the
    kselftest tree's worktree under that tree's lock (checked out anew: another run may
    have moved it since the tree phase)."""
    assert st is not None
    r, a = run.runner, st.arch
    colls = sorted({q.collection for q in run.kselftests})
    if r.dry_run:
        run.progress.line(f"+ make -C tools/testing/selftests TARGETS=\"{' '.join(colls)}\" "
                          f"install ({a.name})")
        return
    tree, commit = _ks_tree(run)
    with treemod.tree_lock(tree):
        wt = treemod.prepare_worktree(tree, commit, r)
        sid = kselftest_source_id(wt, a, r)
        for c in colls:
            if not (wt / "tools/testing/selftests" / c / "Makefile").is_file():
                have = ksbuild.known_collections(wt)
                raise UsageError(f"--kselftest {c}: no such collection in {tree.spec} "
                                 f"(have: {', '.join(have)})")
        inst = ksbuild.build(a, wt, sid, colls, r,
                             run.log(a.name, "kselftest.log"), progress=run.progress.line)
    st.payload["kselftest"] = inst.dir
    st.files["/bin/bash"] = rootfs.bash_static(a, r, run.progress.line)
    st.kselftest = {"tree": tree.spec, "commit": commit, "collections": colls,
                    "key": inst.key, "headers": inst.headers, "compiled": inst.compiled,
                    "unbuilt": dict(inst.unbuilt)}
    for q in run.kselftests:
        progs = kselftest.programs(q, inst.dir, inst.programs.get(q.collection, []),
                                   inst.unbuilt, run.opts.kselftest_timeout)
        st.programs += progs
        for p in progs:
            src = Path("tools/testing/selftests") / q.collection / f"{p.program}.c"
            if not (wt / src).is_file():
                src = src.with_suffix("") if (wt / src.with_suffix("")).is_file() else None
            if src is not None:
                run.test_files[p.binary] = f"{tree.spec}:{src}"


SOURCES: list[TestSource] = [
    TestSource("selftests", "selftests", ("kernel",), "tests", own_wanted, own_check,
               own_build),
    TestSource("kselftest", "kselftest", ("source",), "kselftests", ks_wanted, ks_check,
               ks_build),
]
