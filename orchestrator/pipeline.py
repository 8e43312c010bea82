"""A run: apply -> config -> build -> selftests -> rootfs -> boot -> test -> report.

`Run(options)` validates what it can before anything slow happens; `Run.execute()` does
the stages, writes metadata.json and JUnit as it goes (so an interrupted run still leaves
them), and returns the exit code. A stage whose dependency failed is recorded as skipped.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import shutil
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from . import (
    __version__,
    build,
    cache,
    faults,
    hooks,
    kconfig,
    qemu,
    results,
    rootfs,
    selftests,
    testrun,
)
from . import arch as archmod
from . import keys as keysmod
from . import series as seriesmod
from . import tree as treemod
from .arch import Arch
from .errors import (
    BISECT_ABORT,
    BISECT_BAD,
    BISECT_GOOD,
    BISECT_SKIP,
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_TEST_FAILED,
    EXIT_USAGE,
    BootError,
    InfraError,
    ConfigError,
    Interrupted,
    MissingToolError,
    OrchError,
    UsageError,
)
from .paths import SELFTESTS
from .progress import Progress
from .report import infra_suite, write_json, write_junit
from .runner import Runner
from .ssh import GuestSSH

STAGES = ["apply", "config", "build", "selftests", "rootfs", "boot", "test"]
ARCH_STAGES = STAGES[1:]  # apply is done once for the run


@dataclass
class Options:
    arches: list[Arch] = field(default_factory=lambda: [archmod.X86_64])
    tree: str | None = None
    base: str | None = None
    series: str | None = "none"
    configs: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    output: Path | None = None
    junit: Path | None = None
    selftests: Path = SELFTESTS
    tests: list[str] | None = None
    jobs: int | None = None
    accel: str = "auto"  # auto | kvm | tcg
    boot_timeout: float = 180.0
    ssh_timeout: float = 60.0
    test_timeout: float = 300.0
    memory: str = "1G"
    smp: int = 2
    append: str = ""
    dry_run: bool = False
    quiet: bool = False
    argv: list[str] = field(default_factory=list)
    retries: int = 0  # re-boot and re-test this many times when a test fails
    patches: list | None = None  # a series already loaded (orch bisect's prefixes)
    in_worktree: bool = False  # use orch's worktree as checked out (git bisect run)


@dataclass
class ArchState:
    arch: Arch
    stages: dict[str, dict] = field(default_factory=dict)
    kernel: build.Kernel | None = None
    compiled: bool | None = None
    tests: list[Path] = field(default_factory=list)
    initrd: Path | None = None
    accel: str = ""
    accel_reason: str = ""
    boot_to_ready: float | None = None
    boot_to_ssh: float | None = None
    release: str = ""
    error: OrchError | None = None
    flaky: bool = False
    exit_code: int | None = None  # this arch's (cell's) own verdict
    guest: qemu.Guest | None = None  # while it is up: its console tells a crash from a kill


def default_output() -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("orch-out") / stamp


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
        self.apply_stage: dict = {}
        self.versions: dict[str, dict[str, str]] = {"qemu": {}, "gcc": {}}
        self.fragments: dict[str, list[Path]] = {}
        # Validate cheap things now: bad input fails before anything slow starts.
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
            preflight(opts.arches)
        if opts.accel not in ("auto", "kvm", "tcg"):
            raise UsageError(f"--accel {opts.accel}: choose auto, kvm or tcg")

    # --- bookkeeping ------------------------------------------------------------------

    def log(self, arch: str | None, name: str) -> Path:
        d = self.out / arch if arch else self.out
        d.mkdir(parents=True, exist_ok=True)
        return d / name

    @contextmanager
    def stage(self, st: ArchState | None, name: str) -> Iterator[None]:
        rec: dict = {"status": "running"}
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
        except OrchError as exc:
            rec["status"] = "failed"
            rec["error"] = str(exc)
            raise
        except (KeyboardInterrupt, Interrupted) as exc:
            rec["status"] = "interrupted"
            rec["error"] = str(exc) or "interrupted"
            raise
        except Exception as exc:
            rec["status"] = "failed"
            rec["error"] = f"internal error: {type(exc).__name__}: {exc}"
            raise
        finally:
            rec["seconds"] = round(time.monotonic() - start, 2)
            self.write_reports()

    def reproduce(self) -> str:
        """The `orch run` command line that redoes this run (from cli's option table)."""
        from .cli import command_line

        over = {"tree": self.opts.tree or treemod.DEFAULT_TREE}
        if self.tree:
            over["tree"] = str(self.tree.origin) if self.tree.kind == "git" else self.tree.spec
        if self.base_commit:
            over["base"] = self.base_commit
        over["series"] = self.opts.series or "none"
        return shlex.join(command_line("run", self.opts, keep=lambda o: o.reproduce,
                                       always=("arches", "tree", "series"), overrides=over))

    def metadata(self) -> dict:
        frag = sorted({p for ps in self.fragments.values() for p in ps})
        arches = {}
        for name, st in self.states.items():
            counts = {"pass": 0, "fail": 0, "skip": 0, "error": 0}
            for s in self.suites:
                if s.arch == name:
                    for k, v in s.counts().items():
                        counts[k] += v
            arches[name] = {
                "stages": st.stages,
                "kernel": {
                    "key": st.kernel.key if st.kernel else None,
                    "store": str(st.kernel.store) if st.kernel else None,
                    "release": st.release,
                    "compiled": st.compiled,
                },
                "initramfs": str(st.initrd) if st.initrd else None,
                "accelerator": st.accel,
                "accelerator_reason": st.accel_reason,
                "boot_to_ready_seconds": st.boot_to_ready,
                "boot_to_ssh_seconds": st.boot_to_ssh,
                "results": counts,
                "flaky": st.flaky,
                "error": str(st.error) if st.error else None,
            }
        return {
            "orch_version": __version__,
            "status": self.status,
            "exit_code": self.exit_code,
            "command": shlex.join(self.opts.argv) if self.opts.argv else "",
            "reproduce": self.reproduce(),
            "started": self.started.isoformat(),
            "updated": dt.datetime.now(dt.timezone.utc).isoformat(),
            "output_dir": str(self.out),
            "junit": str(self.junit_path),
            "inputs": {
                "tree": {
                    "spec": self.opts.tree or treemod.DEFAULT_TREE,
                    "kind": self.tree.kind if self.tree else None,
                    "origin": str(self.tree.origin) if self.tree else None,
                    "base_commit": self.base_commit,
                    "head_commit": self.head_commit,
                    "source_tree_object": self.source_tree,
                    "worktree": str(self.worktree) if self.worktree else None,
                },
                "series": {
                    "spec": self.opts.series or "none",
                    "patches": seriesmod.fingerprint(self.patches),
                },
                "configs": [{"path": str(p), "sha256": cache.file_digest(p)} for p in frag],
                "selftests": {
                    "dir": str(self.opts.selftests),
                    "files": {p.name: cache.file_digest(p)
                              for p in sorted(self.opts.selftests.glob("*.[ch]"))},
                    "only": self.opts.tests,
                },
                "kernel_cmdline_extra": self.opts.append,
            },
            "host": {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "kernel": platform.release(),
                **self.versions,
            },
            "apply": self.apply_stage,
            "arches": arches,
        }

    def cell(self, st: ArchState) -> results.Cell:
        """The cell this arch's part of the run is (see results.py)."""
        tree_spec = self.tree.spec if self.tree else (self.opts.tree or treemod.DEFAULT_TREE)
        fp = seriesmod.fingerprint(self.patches)
        return results.Cell(
            arch=st.arch.name,
            tree=results.tree_name(tree_spec, str(self.tree.origin) if self.tree else None),
            base_commit=self.base_commit,
            base_ref=self.opts.base or "",
            series=results.series_name(self.opts.series, len(self.patches)),
            series_hash=results.patchset_hash([p["sha256"] for p in fp]),
            profile=results.profile_name(self.opts.profiles, self.opts.configs),
            fragments=[str(c) for c in self.opts.configs],
            debug="debug" in self.opts.profiles,
            tree_spec=tree_spec,
            head_commit=self.head_commit,
            series_spec=self.opts.series or "none",
            series_patches=len(self.patches),
            kernel_release=st.release,
            kernel_key=st.kernel.key if st.kernel else "",
            accelerator=st.accel,
            compiler=self.versions["gcc"].get(st.arch.name, ""),
            exit_code=st.exit_code,
            status=results.status_of(st.exit_code),
            stages=({"apply": self.apply_stage} if self.apply_stage else {}) | st.stages,
            flaky=st.flaky,
            error=str(st.error) if st.error else "",
        )

    def record(self) -> results.Record:
        """The run as data: results.json, and the JUnit rendered from it."""
        rec = results.Record(kind="run", orch_version=__version__,
                             command=shlex.join(self.opts.argv) if self.opts.argv else "",
                             created=self.started.isoformat())
        for name, st in self.states.items():
            cell = self.cell(st)
            rec.cells.append(cell)
            for s in self.suites:
                if s.arch == name:
                    rec.tests += results.cases_from_suite(cell.id, s, self.source_file(s),
                                                          self.logs_of(name, s))
        return rec

    def source_file(self, s: testrun.Suite) -> str:
        if s.binary.startswith("orch-"):
            return ""
        if self.opts.selftests == SELFTESTS:
            return f"selftests/{s.binary}.c"
        return str(self.opts.selftests / f"{s.binary}.c")

    def logs_of(self, arch: str, s: testrun.Suite) -> dict[str, str]:
        """A suite's logs, relative to the output directory, those that exist."""
        if s.binary.startswith("orch-"):
            stage = s.binary.removeprefix("orch-")
            names = {"apply": "apply.log", "boot": f"{arch}/console.log",
                     "test": f"{arch}/console.log"}
            cands = {"log": names.get(stage, f"{arch}/{stage}.log")}
        else:
            cands = {"output": f"{arch}/tests/{s.binary}.ktap",
                     "dmesg": f"{arch}/tests/{s.binary}.dmesg",
                     "console": f"{arch}/console.log"}
        return {k: v for k, v in cands.items() if (self.out / v).exists()}

    def write_reports(self) -> None:
        if self.opts.dry_run:
            return
        write_json(self.out / "metadata.json", self.metadata())
        rec = self.record()
        results.write(self.out / results.FILENAME, rec)
        write_junit(self.junit_path, rec)

    # --- stages -----------------------------------------------------------------------

    def execute(self) -> int:
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
        code = EXIT_PASS
        try:
            self.tree = treemod.resolve(self.opts.tree, self.runner, progress=self.progress.line)
            # One run at a time per tree: the worktree and build dirs are shared.
            with self.tree_lock():
                self.prepare_source()
                for st in self.states.values():
                    st.exit_code = self.run_arch(st)
                    code = max_code(code, st.exit_code)
        except (KeyboardInterrupt, Interrupted) as exc:
            # One signal stops the whole run: no other arch is started.
            code = EXIT_INTERRUPTED
            why = str(exc) or "interrupted"
            self.progress.error(f"orch: {why}; partial results written to {self.out}")
            self.status = "interrupted"
            self.mark_unfinished("interrupted", why)
        except OrchError as exc:
            code = exc.exit_code
            self.report_error(None, exc)
            for st in self.states.values():
                self.suites.append(infra_suite(st.arch.name, exc.stage, str(exc)))
                self.skip_rest(st)
        except Exception as exc:
            # A bug in orch: record it in the partial results; cli prints it and maps the
            # exit code (3, or 128 under --bisect-exit: a bisection must stop).
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
        self.summary()
        return code

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

    def prepare_source(self) -> None:
        r = self.runner
        assert self.tree is not None
        if self.opts.in_worktree:
            self.worktree = treemod.worktree_path(self.tree)
            if not (self.worktree / ".git").exists():
                raise UsageError(f"--in-worktree: no orch worktree at {self.worktree}")
            self.head_commit, self.source_tree = treemod.tree_id(self.worktree, r)
            self.base_commit = self.head_commit
            self.apply_stage = {"status": "ok", "seconds": 0, "in_worktree": True}
            self.progress.line(f"source: {self.worktree} as checked out "
                               f"({self.head_commit[:12]})")
            return
        if self.opts.dry_run and not (self.tree.repo / "HEAD").exists():
            # Nothing imported yet: show what would happen, without a tree to look at.
            self.worktree = treemod.worktree_path(self.tree)
            for p in self.patches:
                r.run(["git", "-C", str(self.worktree), "am", "-3", str(p.path)])
            return
        self.base_commit = treemod.resolve_base(self.tree, self.opts.base, r)
        with self.stage(None, "apply"):
            self.worktree = treemod.prepare_worktree(self.tree, self.base_commit, r)
            seriesmod.apply(self.patches, self.worktree, r, self.log(None, "apply.log"),
                            progress=self.progress.status)
            if not self.opts.dry_run:
                self.head_commit, self.source_tree = treemod.tree_id(self.worktree, r)
        self.progress.line(f"source: {self.tree.spec} @ {self.base_commit[:12]} + "
                           f"{len(self.patches)} patch(es) -> {self.worktree}")

    def run_arch(self, st: ArchState) -> int:
        a = st.arch
        try:
            self.build_arch(st)
            return self.boot_and_test(st)
        except OrchError as exc:
            st.error = exc
            self.report_error(st, exc)
            self.suites.append(infra_suite(a.name, exc.stage, str(exc), exc.hint or ""))
            self.skip_rest(st)
            self.write_reports()
            return exc.exit_code

    def skip_rest(self, st: ArchState) -> None:
        """The arch's stages that did not run because an earlier one failed. (apply is
        the run's, in metadata's `apply`: never recorded per arch.)"""
        for name in ARCH_STAGES:
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
            self.suites.append(infra_suite(name, what, f"{why}{where}"))
            for n in ARCH_STAGES:
                st.stages.setdefault(n, {"status": "not run"})

    def build_arch(self, st: ArchState) -> None:
        a, r = st.arch, self.runner
        assert self.worktree is not None and self.tree is not None
        # One build dir per arch and profile: a --debug run must not turn the plain
        # kernel's objects over (and back) in a shared dir.
        builddir = treemod.build_dir(self.worktree, "-".join([a.name, *self.opts.profiles]))
        with self.stage(st, "config"):
            self.versions["gcc"][a.name] = build.compiler_version(a, r)
            stamp = cache.digest("config-v1", a.name, self.source_tree, *[
                f"{f}:{cache.file_digest(f)}" for f in self.fragments[a.name]])
            kconfig.configure(a, self.worktree, builddir, self.fragments[a.name], r,
                              self.log(a.name, "config.log"), stamp=stamp)
            config_text = "" if r.dry_run else (builddir / ".config").read_text()
            if not r.dry_run:
                (self.log(a.name, "config")).write_text(config_text)
        with self.stage(st, "build"):
            key = build.build_key(a, self.source_tree, config_text, self.versions["gcc"][a.name])
            st.kernel, st.compiled = build.build(a, self.worktree, builddir, key, r,
                                                 self.log(a.name, "build.log"), self.opts.jobs,
                                                 progress=self.progress.status,
                                                 warn=lambda m: self.progress.error(
                                                     f"orch: [{a.name}] build: {m}"))
            st.release = st.kernel.info().get("release", "")
            if not r.dry_run:
                self.progress.line(f"[{a.name}] kernel {st.release or '?'}: "
                                   f"{'built' if st.compiled else 'up to date, no compile'}"
                                   f" (key {key[:12]})")
        with self.stage(st, "selftests"):
            st.tests = selftests.build(a, self.opts.selftests, st.kernel.headers, st.kernel.key,
                                       r, self.log(a.name, "selftests.log"), self.opts.tests,
                                       progress=self.progress.status)
        with self.stage(st, "rootfs"):
            keys = keysmod.ensure(r)
            st.initrd = rootfs.build_initramfs(a, keys, st.tests, r, progress=self.progress.line) \
                if not r.dry_run else Path("initramfs.cpio")

    def choose_accel(self, st: ArchState) -> None:
        a = st.arch
        if self.opts.accel == "tcg" or not archmod.is_native(a):
            st.accel = "tcg"
            st.accel_reason = "requested" if self.opts.accel == "tcg" else \
                f"{a.name} guest on {archmod.host_arch()} host"
            return
        assert st.kernel is not None
        ok, why = qemu.kvm_probe(a, st.kernel.image)
        if ok:
            st.accel, st.accel_reason = "kvm", why
            return
        if self.opts.accel == "kvm":
            raise BootError(f"--accel kvm requested but KVM does not work here: {why}")
        st.accel, st.accel_reason = "tcg", why
        self.progress.line(f"[{a.name}] KVM not usable ({why}); falling back to TCG (slower)")

    @contextmanager
    def guest(self, st: ArchState) -> Iterator[GuestSSH]:
        """Boot the arch's kernel and yield a connected SSH session; QEMU dies on exit."""
        a = st.arch
        assert st.kernel is not None and st.initrd is not None
        self.choose_accel(st)
        self.versions["qemu"][a.name] = qemu.qemu_version(a)
        keys = keysmod.ensure(self.runner)
        port = qemu.free_port()
        spec = qemu.BootSpec(st.kernel.image, st.initrd, port, st.accel, self.opts.memory,
                             self.opts.smp, self.opts.append)
        console = self.log(a.name, "console.log")
        console.unlink(missing_ok=True)
        with qemu.Guest(a, spec, console) as g:
            self.progress.status(f"[{a.name}] booting ({st.accel})")
            st.boot_to_ready = round(g.wait_ready(self.opts.boot_timeout), 2)
            ssh = GuestSSH(port, keys)
            try:
                remaining = self.opts.ssh_timeout
                ssh.connect(remaining, alive=lambda: not g.exited.is_set())
            except OrchError as exc:
                if g.panicked.is_set():
                    raise BootError(f"kernel panic: {g.first_problem()}",
                                    hint=g.excerpt()) from None
                raise exc
            st.boot_to_ssh = round(time.monotonic() - g.started_at, 2)
            self.progress.line(f"[{a.name}] booted {g.marker.split()[-1]} under "
                               f"{st.accel.upper()}: init {st.boot_to_ready}s, "
                               f"SSH {st.boot_to_ssh}s")
            st.guest = g
            try:
                yield ssh
            finally:
                st.guest = None
                ssh.close()

    def boot_and_test(self, st: ArchState) -> int:
        a = st.arch
        if self.opts.dry_run:
            spec = qemu.BootSpec(Path("IMAGE"), Path("INITRD"), 10022, "tcg", self.opts.memory,
                                 self.opts.smp, self.opts.append)
            self.progress.line("+ " + shlex.join(qemu.qemu_argv(a, spec)))
            return EXIT_PASS
        code = self.boot_and_test_once(st)
        attempt = 0
        while code == EXIT_TEST_FAILED and attempt < self.opts.retries:
            attempt += 1
            self.progress.line(f"[{a.name}] tests failed; retry {attempt}/{self.opts.retries}")
            first = [s for s in self.suites if s.arch == a.name]
            self.suites = [s for s in self.suites if s.arch != a.name]
            again = self.boot_and_test_once(st)
            if again == EXIT_PASS:
                # Failed, then passed on the same kernel: flaky, not a verdict.
                st.flaky = True
                self.progress.error(f"orch: [{a.name}] FLAKY: tests failed, then passed on "
                                    f"retry {attempt}")
                self.suites = [s for s in self.suites if s.arch != a.name] + first
                return EXIT_TEST_FAILED
            code = again
        return code

    def boot_and_test_once(self, st: ArchState) -> int:
        with self.stage(st, "boot"):
            cm = self.guest(st)
            ssh = cm.__enter__()
        try:
            with self.stage(st, "test"):
                code = self.run_tests(st, ssh)
        except BaseException:
            cm.__exit__(*sys.exc_info())
            raise
        cm.__exit__(None, None, None)
        return code

    def run_tests(self, st: ArchState, ssh: GuestSSH) -> int:
        a = st.arch
        code = EXIT_PASS
        lost = False  # the machine or the connection went away: infrastructure
        gone: faults.Lost | None = None  # why the remaining binaries do not run
        for t in st.tests:
            if gone:
                s = testrun.Suite(a.name, t.name)
                s.cases.append(testrun.ktap.TestResult(
                    t.name, "error" if gone.infrastructure else "skip",
                    message=f"not run: {gone.message}",
                    kind=gone.kind if gone.infrastructure else "crash"))
                self.suites.append(s)
                continue
            self.progress.status(f"[{a.name}] test {t.name}")
            mark = st.guest.mark() if st.guest else 0
            s = testrun.run_binary(ssh, a.name, t.name, self.opts.test_timeout,
                                   self.out / a.name / "tests")
            ssh_err = next((x for x in s.cases if x.name == "ssh" and x.status == "error"),
                           None)
            if ssh_err:
                gone = faults.diagnose(st.guest, t.name, since=mark,
                                       detail=ssh_err.message.split(": ", 1)[-1])
                faults.reclassify(s, gone)
                if gone.infrastructure:
                    lost = True
                    st.error = InfraError(gone.message, stage="test")
                self.progress.error(f"orch: [{a.name}] test: {gone.message}")
            self.suites.append(s)
            c = s.counts()
            self.progress.line(f"[{a.name}] {t.name}: {c['pass']} passed, {c['fail']} failed, "
                               f"{c['skip']} skipped, {c['error']} errors "
                               f"({s.duration:.1f}s)")
            self.write_reports()
        counts = {"pass": 0, "fail": 0, "skip": 0, "error": 0}
        for s in self.suites:
            if s.arch == a.name:
                for k, v in s.counts().items():
                    counts[k] += v
        if counts["error"]:
            code = EXIT_INFRA if lost else EXIT_TEST_FAILED
        if counts["fail"]:
            code = max_code(code, EXIT_TEST_FAILED)
        real = [c for s in self.suites if s.arch == a.name for c in s.cases
                if c.name != "dmesg_clean" and c.status in ("pass", "fail")]
        if not real and code == EXIT_PASS:
            # Nothing actually ran (everything skipped): never report that as a pass.
            code = EXIT_TEST_FAILED
            self.progress.error(f"orch: [{a.name}] no test ran (all skipped)")
        return code

    def summary(self) -> None:
        for name in self.states:
            c = {"pass": 0, "fail": 0, "skip": 0, "error": 0}
            for s in self.suites:
                if s.arch == name:
                    for k, v in s.counts().items():
                        c[k] += v
            self.progress.line(f"{name}: {c['pass']} passed, {c['fail']} failed, "
                               f"{c['skip']} skipped, {c['error']} errors")
        if not self.opts.dry_run:
            self.progress.line(f"results: {self.junit_path}  {self.out / results.FILENAME}  "
                               f"metadata: {self.out / 'metadata.json'}  (exit {self.exit_code})")


def preflight(arches: list[Arch]) -> None:
    """Missing host programs are found before a 3-minute build, not after it."""
    needed = [("git", "git"), ("make", "make"), ("flex", "flex"), ("bison", "bison"),
              ("bc", "bc"), ("cpio", "cpio"), ("readelf", "binutils"),
              ("dropbearconvert", "dropbear-bin")]
    for a in arches:
        needed.append((a.cc(), a.cross_package if a.cross_compile() else "gcc"))
        needed.append((a.qemu, a.qemu_package))
        if archmod.is_native(a):
            needed += [("busybox", "busybox-static"), ("dropbear", "dropbear-bin")]
        else:
            needed += [("apt-get", "apt"), ("dpkg-deb", "dpkg")]
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for tool, pkg in needed:
        if not shutil.which(tool, path=path):
            raise MissingToolError(f"{tool} not found (apt-get install {pkg})")


SEVERITY = [EXIT_PASS, EXIT_TEST_FAILED, EXIT_INFRA, EXIT_USAGE, EXIT_INTERRUPTED]


def max_code(a: int, b: int) -> int:
    """The more serious of two exit codes (interrupt > usage > infra > test failure)."""
    return a if SEVERITY.index(a) >= SEVERITY.index(b) else b


def bisect_code(code: int, error: OrchError | None = None, flaky: bool = False) -> int:
    """Map an orch exit code to `git bisect run`'s convention."""
    if flaky:
        return BISECT_SKIP
    if code == EXIT_PASS:
        return BISECT_GOOD
    if code == EXIT_TEST_FAILED:
        return BISECT_BAD
    if code == EXIT_INFRA:
        return BISECT_SKIP
    if code == EXIT_USAGE and isinstance(error, ConfigError):
        return BISECT_SKIP
    return BISECT_ABORT

