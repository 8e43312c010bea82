"""A run: the stages of stages.py (apply -> config -> build -> selftests -> [rootfs] ->
boot -> test), on a target (targets.py), reported as it goes (runrecord.py).

`Run(options)` validates what it can before anything slow happens; `Run.execute()` walks
the stage table and returns the exit code. Only the stages that work in orch's worktree
(apply, config, build) hold the tree lock: two runs on one tree overlap everywhere else.
A stage whose need was not given is recorded as skipped.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from orchestrator.base import hooks
from orchestrator.base.errors import (
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_TEST_FAILED,
    Interrupted,
    MissingToolError,
    OrchError,
    UsageError,
    worst,
)
from orchestrator.base.progress import Progress
from orchestrator.base.runner import Runner
from orchestrator.kernel import arch as archmod
from orchestrator.kernel import build, kconfig
from orchestrator.kernel import series as seriesmod
from orchestrator.kernel import tree as treemod
from orchestrator.kernel.arch import Arch
from orchestrator.options import Options
from orchestrator.run import record as runrecord
from orchestrator.run.stages import CHECK, MACHINE, RETRY_FROM, STAGES, TREE, Stage
from orchestrator.store import cache
from orchestrator.targets import base as targets
from orchestrator.testing import compile as selftests
from orchestrator.testing import suite as testrun


@dataclass
class ArchState:
    arch: Arch
    stages: dict[str, dict] = field(default_factory=dict)
    products: set[str] = field(default_factory=set)  # what this arch's stages gave
    config_text: str = ""
    kernel: build.Kernel | None = None
    compiled: bool | None = None
    tests: list[Path] = field(default_factory=list)
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
    exit_code: int | None = None  # this arch's (cell's) own verdict


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


class Run:
    def __init__(self, opts: Options):
        self.opts = opts
        self.out = (opts.output or default_output()).resolve()
        self.junit_path = (opts.junit or self.out / "junit.xml").resolve()
        self.progress = Progress(quiet=opts.quiet)
        self.runner = Runner(dry_run=opts.dry_run, echo=self.progress.line)
        self.states = {a.name: ArchState(a) for a in opts.arches}
        self.suites: list[testrun.Suite] = []
        self.started = dt.datetime.now(dt.timezone.utc)
        self.status = "running"
        self.exit_code: int | None = None
        self.tree: treemod.Tree | None = None
        self.base_commit = ""
        self.head_commit = ""
        self.source_tree = ""
        self.worktree: Path | None = None
        self.patches: list[seriesmod.Patch] = []
        self.products: set[str] = set()  # what the run-wide stages gave
        self.apply_stage: dict = {}
        self.versions: dict[str, dict[str, str]] = {"qemu": {}, "gcc": {}}
        self.fragments: dict[str, list[Path]] = {}
        # Validate cheap things now: bad input fails before anything slow starts.
        self.target = targets.make(opts)
        self.stages: list[Stage] = [s for s in STAGES if s.wanted(self)]
        self.given = {s.gives for s in self.stages if s.gives}
        self.patches = opts.patches if opts.patches is not None else seriesmod.load(opts.series)
        if opts.in_worktree and self.patches:
            raise UsageError("--in-worktree takes no --series (it would move git bisect's HEAD)")
        for a in opts.arches:
            self.fragments[a.name] = kconfig.fragments_for(a, opts.configs, opts.profiles)
            for f in self.fragments[a.name]:
                kconfig.parse_fragment(f)
        selftests.sources(opts.selftests, opts.tests)
        for a in opts.arches:
            if opts.smp > a.max_cpus:
                raise UsageError(f"--smp {opts.smp}: QEMU's {a.machine} machine ({a.name}) "
                                 f"takes at most {a.max_cpus} CPUs")
        if not opts.dry_run:
            preflight(opts.arches, self.target)
        if opts.accel not in ("auto", "kvm", "tcg"):
            raise UsageError(f"--accel {opts.accel}: choose auto, kvm or tcg")

    # --- bookkeeping ------------------------------------------------------------------

    def log(self, arch: str | None, name: str) -> Path:
        d = self.out / arch if arch else self.out
        d.mkdir(parents=True, exist_ok=True)
        return d / name

    @contextmanager
    def stage(self, st: ArchState | None, name: str) -> Iterator[None]:
        rec: dict = {"status": "running",
                     "started": dt.datetime.now(dt.timezone.utc).isoformat()}
        if st is None:
            self.apply_stage = rec
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

    def write_reports(self) -> None:
        if not self.opts.dry_run:
            runrecord.write(self)

    # --- the stage walk -----------------------------------------------------------------

    def run_stage(self, s: Stage, st: ArchState | None) -> bool:
        """Run one stage (for one arch, or for the run); False when it failed or was
        skipped. A stage's error is recorded for the arches it concerns and not raised."""
        if st is not None and st.error is not None:
            st.stages[s.name] = {"status": "skipped", "reason": f"{st.error.stage} failed"}
            return False
        if st is None and all(a.error is not None for a in self.states.values()):
            self.apply_stage = {"status": "skipped", "reason": "every arch failed"}
            return False
        have = self.products | (st.products if st else set())
        missing = [n for n in s.needs if n in self.given and n not in have]
        if missing:
            rec = {"status": "skipped", "reason": f"no {missing[0]}"}
            if st is None:
                self.apply_stage = rec
            else:
                st.stages[s.name] = rec
            return False
        try:
            with self.stage(st, s.name):
                s.do(self, st)
        except OrchError as exc:
            if isinstance(exc, Interrupted):
                raise
            self.fail([st] if st else list(self.states.values()), exc)
            return False
        if s.gives:
            (st.products if st else self.products).add(s.gives)
        return True

    def fail(self, states: list[ArchState], exc: OrchError) -> None:
        """An error for these arches: one line on screen, an error testcase in JUnit."""
        self.report_error(states[0] if len(states) == 1 else None, exc)
        for st in states:
            st.error = exc
            st.exit_code = worst(st.exit_code, exc.exit_code)
            self.suites.append(testrun.infra_suite(st.arch.name, exc.stage, str(exc),
                                                   exc.hint or ""))
        self.write_reports()

    def walk(self, stages: list[Stage], st: ArchState | None = None) -> None:
        for s in stages:
            if s.per_arch and st is None:
                for a in self.states.values():
                    self.run_stage(s, a)
            else:
                self.run_stage(s, st)

    def execute(self, until: str | None = None) -> int:
        """Walk the stages (all of them, or up to and including `until`, leaving the
        machine up for the caller: `orch boot`) and return the exit code."""
        self.out.mkdir(parents=True, exist_ok=True)
        latest = self.out.parent / "latest"
        if not self.opts.output:
            try:
                if latest.is_symlink() or not latest.exists():
                    latest.unlink(missing_ok=True)
                    latest.symlink_to(self.out.name)
            except OSError:
                pass
        self.write_reports()
        names = [s.name for s in self.stages]
        todo = self.stages[:names.index(until) + 1] if until else self.stages
        try:
            self.walk([s for s in todo if s.phase == CHECK])
            tree_stages = [s for s in todo if s.phase == TREE]
            if any(st.error is None for st in self.states.values()):
                self.tree_phase(tree_stages)
            else:  # recorded as skipped, without waiting for the tree
                self.walk(tree_stages)
            for st in self.states.values():
                self.machine_phase(st, [s for s in todo if s.phase == MACHINE],
                                   keep_up=until is not None)
            code = EXIT_PASS
            for st in self.states.values():
                if st.exit_code is None:
                    st.exit_code = st.test_code if st.test_code is not None else EXIT_PASS
                code = worst(code, st.exit_code)
        except (KeyboardInterrupt, Interrupted) as exc:
            # One signal stops the whole run: no other arch is started.
            self.close_machines()
            code = EXIT_INTERRUPTED
            why = str(exc) or "interrupted"
            self.progress.error(f"orch: {why}; partial results written to {self.out}")
            self.status = "interrupted"
            self.mark_unfinished("interrupted", why)
        except OrchError as exc:  # outside any stage: resolving the tree
            code = exc.exit_code
            self.fail([st for st in self.states.values() if st.error is None], exc)
            for st in self.states.values():
                self.skip_rest(st)
        except Exception as exc:
            # A bug in orch: record it in the partial results; cli prints it and maps the
            # exit code (3, or 128 under --bisect-exit: a bisection must stop).
            self.close_machines()
            self.status = "internal-error"
            self.exit_code = EXIT_INFRA
            self.mark_unfinished("internal", f"internal error: {type(exc).__name__}: {exc}")
            for st in self.states.values():
                st.exit_code = EXIT_INFRA if st.exit_code is None else st.exit_code
            self.write_reports()
            raise
        if self.status == "running":
            self.status = {EXIT_PASS: "passed", EXIT_TEST_FAILED: "failed"}.get(code, "error")
        for st in self.states.values():
            if st.exit_code is None:  # the run stopped before this arch had its own verdict
                st.exit_code = code
        self.exit_code = code
        self.write_reports()
        if until is None:
            self.summary()
        return code

    def tree_phase(self, stages: list[Stage]) -> None:
        """The worktree and build dirs are shared by every run of this tree: the lock
        covers apply, config and build. The kernel and its headers are then in the store,
        so what follows needs no tree and overlaps with other runs."""
        self.tree = treemod.resolve(self.opts.tree, self.runner, progress=self.progress.line)
        with self.tree_lock():
            self.walk([s for s in stages if not s.per_arch])
            for st in self.states.values():
                self.walk([s for s in stages if s.per_arch], st)

    def machine_phase(self, st: ArchState, stages: list[Stage], keep_up: bool) -> None:
        """selftests, rootfs, boot, test; a failed test run is retried from a new boot."""
        names = [s.name for s in stages]
        retry_at = names.index(RETRY_FROM) if RETRY_FROM in names else len(stages)
        self.walk(stages[:retry_at], st)
        if keep_up:
            self.walk(stages[retry_at:], st)
            return
        self.up_and_test(st, stages[retry_at:])
        attempt = 0
        while st.test_code == EXIT_TEST_FAILED and attempt < self.opts.retries:
            attempt += 1
            a = st.arch.name
            self.progress.line(f"[{a}] tests failed; retry {attempt}/{self.opts.retries}")
            first = [s for s in self.suites if s.arch == a]
            self.suites = [s for s in self.suites if s.arch != a]
            st.products.discard("machine")
            self.up_and_test(st, stages[retry_at:])
            if st.test_code == EXIT_PASS:
                # Failed, then passed on the same kernel: flaky, not a verdict.
                st.flaky = True
                self.progress.error(f"orch: [{a}] FLAKY: tests failed, then passed on "
                                    f"retry {attempt}")
                self.suites = [s for s in self.suites if s.arch != a] + first
                st.test_code = EXIT_TEST_FAILED

    def up_and_test(self, st: ArchState, stages: list[Stage]) -> None:
        try:
            self.walk(stages, st)
        finally:
            self.close_machine(st)

    def close_machine(self, st: ArchState) -> None:
        if st.exit is not None:
            exit_, st.exit, st.machine = st.exit, None, None
            exit_.close()

    def close_machines(self) -> None:
        for st in self.states.values():
            try:
                self.close_machine(st)
            except Exception:  # noqa: BLE001 - already failing; QEMU dies with orch anyway
                pass

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

    def report_error(self, st: ArchState | None, exc: OrchError) -> None:
        prefix = f"[{st.arch.name}] " if st else ""
        self.progress.error(f"orch: {prefix}{exc.stage}: {exc}")
        if exc.hint and exc.stage in ("build",):
            for ln in exc.hint.splitlines()[:20]:
                self.progress.error(f"    {ln}")

    def tree_lock(self):
        """The per-tree lock; `orch bisect` holds it for its `git bisect run` children."""
        assert self.tree is not None
        if os.environ.get("ORCH_TREE_LOCK_HELD") == self.tree.key:
            return nullcontext()
        return cache.locked(cache.subdir("locks") / f"work-{self.tree.key}.lock")

    def summary(self) -> None:
        for name in self.states:
            c = self.counts(name)
            self.progress.line(f"{name}: {c['pass']} passed, {c['fail']} failed, "
                               f"{c['skip']} skipped, {c['error']} errors")
        if not self.opts.dry_run:
            self.progress.line(f"results: {self.junit_path}  {self.out / runrecord.FILENAME}  "
                               f"metadata: {self.out / 'metadata.json'}  (exit {self.exit_code})")


def preflight(arches: list[Arch], target: targets.Target | None = None) -> None:
    """Missing host programs are found before a 3-minute build, not after it."""
    needed = [("git", "git"), ("make", "make"), ("flex", "flex"), ("bison", "bison"),
              ("bc", "bc"), ("cpio", "cpio"), ("readelf", "binutils")]
    local = target is None or target.kind == "qemu"
    if local:
        needed.append(("dropbearconvert", "dropbear-bin"))
    for a in arches:
        needed.append((a.cc(), a.cross_package if a.cross_compile() else "gcc"))
        if local:
            needed.append((a.qemu, a.qemu_package))
            if archmod.is_native(a):
                needed += [("busybox", "busybox-static"), ("dropbear", "dropbear-bin")]
            else:
                needed += [("apt-get", "apt"), ("dpkg-deb", "dpkg")]
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for tool, pkg in needed:
        if not shutil.which(tool, path=path):
            raise MissingToolError(f"{tool} not found (apt-get install {pkg})")
