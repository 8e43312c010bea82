"""A run's state as data: what it was asked (Options), what each stage found, per arch
(`ArchState`) and for the whole run (`RunState`).

The stages (stages.py) and what a run writes (outputs.py) read and fill a `RunState`; the
walk that drives them is pipeline.py. Building a `RunState` runs nothing and checks
nothing on the host: the check stage does that.
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from orchestrator import targets
from orchestrator.base import hooks
from orchestrator.base.errors import Interrupted, OrchError, UsageError, worst
from orchestrator.base.progress import Progress
from orchestrator.base.runner import Runner
from orchestrator.kernel import build
from orchestrator.kernel import series as seriesmod
from orchestrator.kernel import tree as treemod
from orchestrator.kernel.arch import Arch
from orchestrator.kernel.dirty import Dirty
from orchestrator.options import Options
from orchestrator.testing import kselftest, testrun

CHECK, TREE, MACHINE = "check", "tree", "machine"


@dataclass(frozen=True)
class Stage:
    name: str
    do: Callable[["RunState", "ArchState | None"], None]
    needs: tuple[str, ...] = ()
    gives: str = ""
    phase: str = MACHINE  # check: before anything slow; tree: in orch's worktree; machine
    per_arch: bool = True
    wanted: Callable[["RunState"], bool] = lambda run: True


@dataclass
class ArchState:
    arch: Arch
    stages: dict[str, dict] = field(default_factory=dict)
    products: set[str] = field(default_factory=set)  # what this arch's stages gave
    config_text: str = ""
    kernel: build.Kernel | None = None
    compiled: bool | None = None
    tests: list[Path] = field(default_factory=list)  # orch's own, built for this kernel
    programs: list[kselftest.Program] = field(default_factory=list)  # what the test stage runs
    payload: dict[str, Path] = field(default_factory=dict)  # test dir trees (kselftest)
    files: dict[str, Path] = field(default_factory=dict)  # guest path -> host file (bash)
    kselftest: dict = field(default_factory=dict)  # the kselftest build, for metadata
    initrd: Path | None = None
    machine: targets.Machine | None = None
    exit: ExitStack | None = None  # closes the machine (QEMU dies, uploads removed)
    target_facts: dict = field(default_factory=dict)
    accel: str = ""
    accel_reason: str = ""
    boot_to_ready: float | None = None
    boot_to_ssh: float | None = None
    release: str = ""
    test_code: int | None = None
    error: OrchError | None = None
    flaky: bool = False
    untested: bool = False  # every test skipped: nothing really ran
    exit_code: int | None = None  # this arch's (cell's) own verdict
    # --coverage: per binary, the gcda files taken from the machine (run/coverage.py), and
    # the cell's line coverage of the series' added lines once computed.
    gcda: dict[str, Path] = field(default_factory=dict)
    coverage: dict | None = None
    coverage_stopped: str = ""  # why no more gcov data is taken (a reset failed)


def builddir(run: "RunState", st: ArchState) -> Path:
    """The arch's build dir in orch's worktree. One per arch and profile: a --debug run
    must not turn the plain kernel's objects over (and back) in a shared dir."""
    assert run.worktree is not None
    return treemod.build_dir(run.worktree, "-".join([st.arch.name, *run.opts.profiles]))


def default_output() -> Path:
    """orch-out/DATE-TIME, made here: two runs started in the same second get two dirs."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("orch-out")
    base.mkdir(exist_ok=True)
    for n in range(1, 1000):
        out = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            out.mkdir()
            return out
        except FileExistsError:
            continue
    raise UsageError(f"orch-out/{stamp}: cannot make a fresh output directory")


@dataclass
class RunState:
    opts: Options
    out: Path
    junit_path: Path
    progress: Progress
    runner: Runner
    target: targets.Target
    stages: list[Stage]
    states: dict[str, ArchState]
    given: set[str] = field(default_factory=set)  # what the wanted stages can give
    suites: list[testrun.Suite] = field(default_factory=list)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    status: str = "running"
    exit_code: int | None = None
    tree: treemod.Tree | None = None
    base_commit: str = ""
    head_commit: str = ""
    source_tree: str = ""
    worktree: Path | None = None
    patches: list[seriesmod.Patch] = field(default_factory=list)
    dirty: Dirty | None = None  # the checkout's uncommitted changes, applied after the series
    products: set[str] = field(default_factory=set)  # what the run-wide stages gave
    run_stages: dict[str, dict] = field(default_factory=dict)  # check, apply
    versions: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"qemu": {}, "gcc": {}})
    fragments: dict[str, list[Path]] = field(default_factory=dict)
    kselftests: list[kselftest.Request] = field(default_factory=list)  # --kselftest, parsed
    coverage_files: list[str] | None = None  # --coverage: the C files profiled (asked for)
    coverage_patches: list[dict] | None = None  # the series' added lines (run/coverage.py)
    coverage_sources: dict[str, str] | None = None  # the series' C files, as tested
    test_files: dict[str, str] = field(default_factory=dict)  # suite -> its source file
    # Called whenever the state changed in a way a reader of the outputs should see.
    report: Callable[[], None] = lambda: None

    @property
    def apply_stage(self) -> dict:
        return self.run_stages.setdefault("apply", {})

    def log(self, arch: str | None, name: str) -> Path:
        d = self.out / arch if arch else self.out
        d.mkdir(parents=True, exist_ok=True)
        return d / name

    def write_reports(self) -> None:
        if not self.opts.dry_run:
            self.report()

    def counts(self, arch: str) -> dict[str, int]:
        c = {"pass": 0, "fail": 0, "skip": 0, "error": 0}
        for s in self.suites:
            if s.arch == arch:
                for k, v in s.counts().items():
                    c[k] += v
        return c

    def learn(self, st: ArchState, facts: dict) -> None:
        """What the target found out while bringing the kernel up."""
        st.target_facts = dict(facts)
        st.accel = str(facts.get("accelerator", st.accel))
        st.accel_reason = str(facts.get("accelerator_reason", st.accel_reason))
        st.boot_to_ready = facts.get("boot_to_ready", st.boot_to_ready)
        st.boot_to_ssh = facts.get("boot_to_ssh", st.boot_to_ssh)
        if facts.get("qemu_version"):
            self.versions["qemu"][st.arch.name] = str(facts["qemu_version"])
        if facts.get("release"):
            st.release = str(facts["release"])  # what runs (--no-deploy: not what was built)

    def arch_stages(self) -> list[str]:
        return [s.name for s in self.stages if s.per_arch]

    def skip_rest(self, st: ArchState) -> None:
        """The arch's stages that did not run because an earlier one failed. (apply is
        the run's, in metadata's `apply`: never recorded per arch.)"""
        for name in self.arch_stages():
            st.stages.setdefault(name, {"status": "skipped"})

    def mark_unfinished(self, what: str, why: str) -> None:
        """After an interrupt or an internal error: every arch that had not finished gets
        an `ARCH.orch-WHAT` error in the JUnit, and its stages not reached are not run."""
        for name, st in self.states.items():
            if st.error is not None:  # failed before: it has its own error already
                continue
            running = [n for n, r in st.stages.items() if r.get("status") in
                       ("interrupted", "running") or
                       str(r.get("error", "")).startswith("internal error")]
            if st.stages.get("test", {}).get("status") == "ok" and not running:
                continue
            where = f" during {running[0]}" if running else (
                " during apply" if self.apply_stage.get("status") != "ok" else
                " (not started)")
            self.suites.append(testrun.infra_suite(name, what, f"{why}{where}"))
            for n in self.arch_stages():
                st.stages.setdefault(n, {"status": "not run"})

    @contextmanager
    def recording(self, st: ArchState | None, name: str) -> Iterator[None]:
        """A stage's record (status, start, seconds, error) around its work."""
        rec: dict = {"status": "running",
                     "started": dt.datetime.now(dt.timezone.utc).isoformat()}
        if st is None:
            self.run_stages[name] = rec
        else:
            st.stages[name] = rec
        start = time.monotonic()
        try:
            self.write_reports()  # observers (and the SIGTERM tests) see which stage runs
            hooks.at_stage(name)
            yield
            rec["status"] = "ok"
        except (KeyboardInterrupt, Interrupted) as exc:
            rec["status"] = "interrupted"
            rec["error"] = str(exc) or "interrupted"
            raise
        except OrchError as exc:
            rec["status"] = "failed"
            rec["error"] = str(exc)
            raise
        except Exception as exc:
            rec["status"] = "failed"
            rec["error"] = f"internal error: {type(exc).__name__}: {exc}"
            raise
        finally:
            rec["seconds"] = round(time.monotonic() - start, 2)
            self.write_reports()

    def fail(self, states: list[ArchState], exc: OrchError, name_arch: bool = True) -> None:
        """An error for these arches: one line on screen (naming the arch when it is one
        arch's, and `name_arch`), an error testcase in JUnit."""
        prefix = f"[{states[0].arch.name}] " if len(states) == 1 and name_arch else ""
        self.progress.error(f"orch: {prefix}{exc.stage}: {exc}")
        if exc.hint and exc.stage == "build":
            for ln in exc.hint.splitlines()[:20]:
                self.progress.error(f"    {ln}")
        for st in states:
            st.error = exc
            st.exit_code = worst(st.exit_code, exc.exit_code)
            self.suites.append(testrun.infra_suite(st.arch.name, exc.stage, str(exc),
                                                exc.hint or ""))
        self.write_reports()
