"""The run's stages as records, in the manner of tuxmake's targets-as-data.

Each `Stage` says what it needs from earlier stages and what it gives, whether it works in
orch's worktree (phase "tree": under the tree lock, which nothing else holds), and whether
it exists at all for this run (`wanted`: the root filesystem only for a target that boots
orch's initramfs; the early target check only for a machine orch does not start). A stage
whose need was not given (its producer failed or was skipped) is recorded as skipped.

`Run` (pipeline.py) walks `STAGES`; `orch boot` walks the same table up to "boot".
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path

from orchestrator import targets
from orchestrator.base.errors import (
    InfraError,
    MissingToolError,
    UsageError,
)
from orchestrator.kernel import arch as archmod
from orchestrator.kernel import build, kconfig
from orchestrator.kernel import coverage as covmod
from orchestrator.kernel import dirty as dirtymod
from orchestrator.kernel import series as seriesmod
from orchestrator.kernel import tree as treemod
from orchestrator.kernel.arch import Arch
from orchestrator.run import coverage as covrun
from orchestrator.run import crashes, outputs
from orchestrator.run.sources import SOURCES
from orchestrator.run.state import CHECK, MACHINE, TREE, ArchState, RunState, Stage, builddir
from orchestrator.store import cache
from orchestrator.targets import UpRequest, rootfs
from orchestrator.targets import keys as keysmod
from orchestrator.testing import lavaresults, lostmachine, testrun

__all__ = ["CHECK", "MACHINE", "TREE", "STAGES", "RETRY_FROM", "Stage", "check"]

# --- check ---------------------------------------------------------------------------------

def check(run: RunState, st: ArchState | None) -> None:
    """Bad input and missing host programs fail here, before anything slow starts."""
    opts = run.opts
    run.patches = opts.patches if opts.patches is not None else seriesmod.load(opts.series)
    if opts.in_worktree and run.patches:
        raise UsageError("--in-worktree takes no --series (it would move git bisect's HEAD)")
    for a in opts.arches:
        run.fragments[a.name] = kconfig.fragments_for(a, opts.configs, opts.profiles)
        for f in run.fragments[a.name]:
            kconfig.parse_fragment(f)
    for src in SOURCES:
        src.check(run)
    if opts.kselftest and not run.target.runs_kselftests:
        raise UsageError(f"--kselftest: not under --target {run.target.kind} yet")
    if opts.repeat > 1 and run.target.runs_tests_itself:
        raise UsageError(f"--repeat {opts.repeat}: --target {run.target.kind} runs its "
                         f"tests itself, once")
    for a in opts.arches:
        if opts.smp > a.max_cpus:
            raise UsageError(f"--smp {opts.smp}: QEMU's {a.machine} machine ({a.name}) "
                             f"takes at most {a.max_cpus} CPUs")
    if not opts.dry_run:
        preflight(opts.arches, run.target, coverage=opts.coverage is not None)
    if opts.accel not in ("auto", "kvm", "tcg"):
        raise UsageError(f"--accel {opts.accel}: choose auto, kvm or tcg")


def preflight(arches: list[Arch], target: targets.Target | None = None,
              coverage: bool = False) -> None:
    """Missing host programs are found before a 3-minute build, not after it (--coverage:
    the arch's gcov, which the coverage stage runs after the tests)."""
    needed = [("git", "git"), ("make", "make"), ("flex", "flex"), ("bison", "bison"),
              ("bc", "bc"), ("cpio", "cpio"), ("readelf", "binutils")]
    local = target is None or target.wants_initramfs  # orch's initramfs is built here
    qemu_here = target is None or target.runs_qemu_here
    if local:
        needed.append(("dropbearconvert", "dropbear-bin"))
    for a in arches:
        needed.append((a.cc(), a.cross_package if a.cross_compile() else "gcc"))
        if coverage:
            needed.append((f"{a.cross_compile()}gcov",
                           a.cross_package if a.cross_compile() else "gcc"))
        if qemu_here:
            needed.append((a.qemu, a.qemu_package))
        if local:
            if archmod.is_native(a):
                needed += [("busybox", "busybox-static"), ("dropbear", "dropbear-bin")]
            else:
                needed += [("apt-get", "apt"), ("dpkg-deb", "dpkg")]
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for tool, pkg in needed:
        if not shutil.which(tool, path=path):
            raise MissingToolError(f"{tool} not found (apt-get install {pkg})")
    if target is not None:
        target.check_host()



def check_target(run: RunState, st: ArchState | None) -> None:
    """A machine orch does not start: reachable, the right arch, root; before the build."""
    assert st is not None
    if run.opts.dry_run:
        run.progress.line(f"+ {run.target.properties()['target']}: uname -m; id -u")
        return
    run.target.check(st.arch, run.runner)


# --- tree ----------------------------------------------------------------------------------

def apply(run: RunState, st: ArchState | None) -> None:
    r, opts = run.runner, run.opts
    assert run.tree is not None
    if opts.in_worktree:
        run.worktree = treemod.worktree_path(run.tree)
        if not (run.worktree / ".git").exists():
            raise UsageError(f"--in-worktree: no orch worktree at {run.worktree}")
        run.head_commit, run.source_tree = treemod.tree_id(run.worktree, r)
        run.base_commit = run.head_commit
        run.apply_stage["in_worktree"] = True
        run.progress.line(f"source: {run.worktree} as checked out ({run.head_commit[:12]})")
        return
    if opts.dry_run and not (run.tree.repo / "HEAD").exists():
        # Nothing imported yet: show what would happen, without a tree to look at.
        run.worktree = treemod.worktree_path(run.tree)
        for p in run.patches:
            r.run(["git", "-C", str(run.worktree), "am", "-3", str(p.path)])
        return
    run.base_commit = treemod.resolve_base(run.tree, opts.base, r)
    run.worktree = treemod.prepare_worktree(run.tree, run.base_commit, r)
    seriesmod.apply(run.patches, run.worktree, r, run.log(None, "apply.log"),
                    progress=run.progress.status)
    apply_dirty(run)
    if not opts.dry_run:
        run.head_commit, run.source_tree = treemod.tree_id(run.worktree, r)
        if opts.coverage is not None:
            changed = covmod.series_sources(run.tree.repo, run.base_commit,
                                            run.head_commit, r)
            run.coverage_files, notes = covmod.requested(
                run.worktree, [f for f in changed if f.endswith(".c")], opts.coverage)
            for line in notes:
                run.progress.line(f"orch: {line}")
            if not run.coverage_files:
                run.progress.line("orch: coverage: the series changes no C file that can be "
                                  "profiled; name files with --coverage=FILE,...")
    run.progress.line(f"source: {run.tree.spec} @ {run.base_commit[:12]} + "
                      f"{len(run.patches)} patch(es) -> {run.worktree}")


def apply_dirty(run: RunState) -> None:
    """The checkout's uncommitted changes, as a final commit after the series (dirty.py),
    unless --committed; one line says so either way."""
    opts = run.opts
    if opts.committed or opts.dry_run or run.tree is None or run.tree.kind != "git":
        return
    d = dirtymod.state(run.tree, run.runner)
    if d is None:
        return
    if d.head != run.base_commit:
        run.progress.line(f"orch: {d.checkout} has uncommitted changes ({d.describe()}): "
                          f"not tested, --base {opts.base} is not its HEAD")
        return
    dirtymod.apply(d, run.worktree, run.out / "dirty.diff", run.runner,
                   run.log(None, "apply.log"))
    run.dirty = d
    run.apply_stage["dirty"] = {"files": d.files, "sha256": d.sha256, "diff": "dirty.diff"}
    run.progress.line(f"orch: testing the uncommitted changes in {d.checkout} "
                      f"({d.describe()}) as a final change after the series "
                      f"(+{dirtymod.NAME}, saved in dirty.diff; --committed tests HEAD only)")




def config(run: RunState, st: ArchState | None) -> None:
    assert st is not None and run.worktree is not None
    a, r = st.arch, run.runner
    run.versions["gcc"][a.name] = build.compiler_version(a, r)
    # Not the source tree object: an edit to a .c file leaves the .config as it was.
    stamp = "" if r.dry_run else cache.digest(
        "config-v2", a.name, run.versions["gcc"][a.name],
        kconfig.inputs_digest(run.worktree, r),
        *[f"{f}:{cache.file_digest(f)}" for f in run.fragments[a.name]])
    bdir = builddir(run, st)
    kconfig.configure(a, run.worktree, bdir, run.fragments[a.name], r,
                      run.log(a.name, "config.log"), stamp=stamp)
    st.config_text = "" if r.dry_run else (bdir / ".config").read_text()
    if not r.dry_run:
        run.log(a.name, "config").write_text(st.config_text)


def build_kernel(run: RunState, st: ArchState | None) -> None:
    assert st is not None and run.worktree is not None
    a, r = st.arch, run.runner
    key = build.build_key(a, run.source_tree, st.config_text, run.versions["gcc"][a.name],
                          run.coverage_files)
    source = {"source_tree": run.source_tree, "commit": run.head_commit,
              "repo": str(run.tree.repo) if run.tree else "",
              "compiler": run.versions["gcc"][a.name]}
    st.kernel, st.compiled = build.build(a, run.worktree, builddir(run, st), key, r,
                                         run.log(a.name, "build.log"), run.opts.jobs,
                                         meter=run.progress.meter,
                                         warn=lambda m: run.progress.error(
                                             f"orch: [{a.name}] build: {m}"),
                                         source=source, config_text=st.config_text,
                                         note=lambda m: run.progress.line(
                                             f"orch: [{a.name}] {m}"),
                                         coverage=run.coverage_files)
    st.release = st.kernel.info().get("release", "")
    if not r.dry_run:
        run.progress.line(f"[{a.name}] kernel {st.release or '?'}: "
                          f"{'built' if st.compiled else 'up to date, no compile'}"
                          f" (key {key[:12]})")


# --- machine (no tree needed: the kernel and its headers are in the store) -----------------

def build_rootfs(run: RunState, st: ArchState | None) -> None:
    assert st is not None
    r = run.runner
    keys = keysmod.ensure(r)
    st.initrd = rootfs.build_initramfs(st.arch, keys, st.tests, r,
                                       progress=run.progress.line, payload=st.payload,
                                       guest_files=st.files) \
        if not r.dry_run else Path("initramfs.cpio")


def up_request(run: RunState, st: ArchState) -> UpRequest:
    return UpRequest(st.arch, st.kernel, st.initrd, st.tests,
                     run.log(st.arch.name, "console.log"), run.runner,
                     progress=run.progress.line, status=run.progress.status,
                     payload=dict(st.payload), notice=run.progress.error,
                     labels=outputs.labels(run, st))


def boot(run: RunState, st: ArchState | None) -> None:
    """Boot (QEMU) or deploy (a machine over SSH); the machine stays up for the tests."""
    assert st is not None
    req = up_request(run, st)
    if run.opts.dry_run:
        for line in run.target.dry_run(req):
            run.progress.line(line)
        return
    st.exit = ExitStack()
    try:
        st.machine = st.exit.enter_context(run.target.up(req))
    except BaseException:
        st.exit.close()
        st.exit = None
        raise
    finally:
        run.learn(st, req.facts)


def test(run: RunState, st: ArchState | None) -> None:
    assert st is not None
    if run.opts.dry_run:
        return
    assert st.machine is not None
    covrun.start(run, st)
    if st.machine.report is not None:  # the target ran the tests itself (LAVA)
        st.test_code = record_report(run, st)
    else:
        st.test_code = run_tests(run, st)


def record_report(run: RunState, st: ArchState) -> int:
    """The tests a target ran itself (a LAVA job), read into the run's suites."""
    a = st.arch
    assert st.machine is not None
    suites, gone = lavaresults.suites(
        st.machine.report, a.name, [t.binary for t in st.programs if t.payload == "selftests"],
        run.opts.test_timeout, run.out / a.name / "tests")
    if gone:
        run.progress.error(f"orch: [{a.name}] test: {gone.message}")
        if gone.infrastructure:
            st.error = InfraError(gone.message, stage="test")
    for s in suites:
        run.suites.append(s)
        c = s.counts()
        run.progress.line(f"[{a.name}] {s.binary}: {c['pass']} passed, {c['fail']} failed, "
                          f"{c['skip']} skipped, {c['error']} errors ({s.duration:.1f}s)")
    return verdict(run, st, lost=bool(gone and gone.infrastructure))  # reports: the stage's


def run_tests(run: RunState, st: ArchState) -> int:
    a = st.arch
    m = st.machine
    assert m is not None
    lost = False  # the machine or the connection went away: infrastructure
    gone: lostmachine.Lost | None = None  # why the remaining binaries do not run
    history = f"tests-{a.name}-" + cache.digest(*(t.binary for t in st.programs),
                                                str(run.opts.repeat))[:12]
    steps = run.progress.meter(f"tests {a.name}", len(st.programs),
                               cache.recall(history).get("seconds"))
    for i, t in enumerate(st.programs):
        if gone or t.skip:
            s = testrun.Suite(a.name, t.binary)
            s.cases.append(testrun.ktap.TestResult(
                t.program, "skip", message=t.skip, kind="exit_code") if not gone else
                testrun.ktap.TestResult(
                t.binary, "error" if gone.infrastructure else "skip",
                message=f"not run: {gone.message}",
                kind=gone.kind if gone.infrastructure else "crash"))
            run.suites.append(s)
            continue
        steps.update(t.binary, done=i)
        covrun.before(run, st, t.binary)
        where = m.tests_dir if t.payload == "selftests" else m.dirs[t.payload]
        spent, runs = 0.0, 0
        while runs < run.opts.repeat:  # --repeat: until a run fails
            runs += 1
            mark = m.guest.mark() if m.guest else 0
            s = testrun.run_binary(m.session, a.name, t.binary, t.timeout,
                                   run.out / a.name / "tests", path=f"{where}/{t.path}",
                                   cwd=f"{where}/{t.cwd}" if t.cwd else "/tmp", args=t.args,
                                   program=t.program)
            spent += s.duration
            c = s.counts()
            if c["fail"] or c["error"]:  # a lost machine (ssh error) too
                break
        s.duration = spent  # the binary's time: every run of it
        ssh_err = next((x for x in s.cases if x.name == "ssh" and x.status == "error"), None)
        if ssh_err:
            # A machine with a console (QEMU) tells a crash from a kill; one without
            # (a board over SSH) cannot: infrastructure.
            gone = lostmachine.diagnose(m.guest, t.binary, since=mark,
                                   detail=ssh_err.message.split(": ", 1)[-1])
            lostmachine.reclassify(s, gone)
            if gone.infrastructure:
                lost = True
                st.error = InfraError(gone.message, stage="test")
            run.progress.error(f"orch: [{a.name}] test: {gone.message}")
        else:
            covrun.after(run, st, t.binary)
        testrun.repeated(s, runs, run.opts.repeat)  # after the lost-machine reclassify
        crashes.triage(run, st, s)
        run.suites.append(s)
        c = s.counts()
        run.progress.line(f"[{a.name}] {t.binary}: {c['pass']} passed, {c['fail']} failed, "
                          f"{c['skip']} skipped, {c['error']} errors ({s.duration:.1f}s)")
        run.write_reports()
    if not gone:
        cache.remember(history, seconds=round(steps.elapsed(), 1))
    return verdict(run, st, lost)


def verdict(run: RunState, st: ArchState, lost: bool) -> int:
    """The arch's test exit code from its suites (testing/testrun.py's verdict; `lost`:
    infrastructure went away)."""
    a = st.arch
    code, untested = testrun.verdict([s for s in run.suites if s.arch == a.name], lost)
    if untested:
        st.untested = True  # for git bisect: "cannot test", not "bad" (run/bisect.py)
        run.progress.error(f"orch: [{a.name}] no test ran (all skipped)")
    return code


TESTS = tuple(src.gives for src in SOURCES)  # what the wanted test sources give

STAGES: list[Stage] = [
    Stage("check", check, gives="checked", phase=CHECK, per_arch=False),
    Stage("preflight", check_target, gives="target", phase=CHECK,
          wanted=lambda run: run.target.remote),
    Stage("apply", apply, gives="source", phase=TREE, per_arch=False),
    Stage("config", config, needs=("source",), gives="config", phase=TREE),
    Stage("build", build_kernel, needs=("config",), gives="kernel", phase=TREE),
    *[Stage(src.stage, src.build, needs=src.needs, gives=src.gives, wanted=src.wanted)
      for src in SOURCES],
    Stage("rootfs", build_rootfs, needs=TESTS, gives="initramfs",
          wanted=lambda run: run.target.wants_initramfs),
    Stage("boot", boot, needs=("target", "kernel", *TESTS, "initramfs"), gives="machine"),
    Stage("test", test, needs=("machine",), gives="results"),
    Stage("coverage", covrun.analyse, needs=("results",), gives="coverage",
          wanted=lambda run: run.opts.coverage is not None),
]

# A failed test run is retried from here (--retries): a fresh boot, the same kernel.
RETRY_FROM = "boot"
