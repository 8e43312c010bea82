"""The options of `orch run`, `orch bisect` and `orch boot`, as one table of `Opt` records,
and `Options`: what a run is asked to do.

The table is used both ways, as tuxmake's CommandLine.reproduce does: it builds the argparse
parsers (orchestrator.cli), and it writes an option set back as a command line
(`command_line()`), which is how a commit-bisection step gets exactly the user's options,
how a plan cell becomes a command, and how metadata.json's `reproduce` is made. Adding an
option is one `Opt` entry: here, or, for a target's own setting, in that target's module
(its `OPTIONS`), which this table takes in.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from orchestrator.base.errors import UsageError
from orchestrator.base.opt import (
    BISECT,
    BOOT,
    RUN,
    Opt,
    abs_path,
    count,
    kernel_append,
    memory,
    positive_int,
    seconds,
    test_seconds,
)
from orchestrator.base.paths import PATCHES, SELFTESTS
from orchestrator.kernel import arch as archmod
from orchestrator.kernel.arch import Arch
from orchestrator.kernel.tree import DEFAULT_TREE, EMBEDDED
from orchestrator.targets import TARGET_OPTIONS

# The project's UFFDIO_MOVE series for 6.1 is what `orch run` tests by default.
DEFAULT_SERIES = str(PATCHES / "uffd-move")


def default_series(args) -> str:
    """The project's series is written for the embedded 6.1 tree: it is the default there
    and only there (another tree, or git bisect's checkout, starts with no series)."""
    if getattr(args, "in_worktree", False):
        return "none"
    if args.tree in (None, DEFAULT_TREE) and args.base is None:
        return DEFAULT_SERIES
    return "none"


def arch_list(value: str) -> list[archmod.Arch]:
    try:
        return archmod.parse_list(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def smp(value: str) -> int:
    x = positive_int(value)
    top = max(a.max_cpus for a in archmod.ARCHES.values())
    if x > top:
        raise argparse.ArgumentTypeError(f"'{value}': QEMU's machines take at most {top} CPUs")
    return x


def coverage_files(value: str) -> list[str]:
    """`--coverage=FILE[,FILE]`: more C files of the tree to profile, by their path in it."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name the files: --coverage=mm/mmap.c[,FILE]")
    for n in names:
        if not n.endswith(".c") or n.startswith("/") or ".." in Path(n).parts:
            raise argparse.ArgumentTypeError(
                f"'{n}': a C file of the tree, by its path in it (mm/mmap.c)")
    return sorted(set(names))


@dataclass
class Options:
    """What a run is asked to do: the table's values by dest, and what orch sets itself."""

    arches: list[Arch] = field(default_factory=lambda: [archmod.X86_64])
    tree: str | None = None
    base: str | None = None
    series: str | None = "none"
    configs: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    output: Path | None = None
    junit: Path | None = None
    selftests: Path = SELFTESTS  # Path("none"): none of orch's own
    tests: list[str] | None = None
    kselftest: list[str] = field(default_factory=list)  # --kselftest specs
    kselftest_tree: str | None = None
    kselftest_timeout: float | None = None
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
    repeat: int = 1  # run each test binary this many times in one boot; any failure fails
    patches: list | None = None  # a series already loaded (orch bisect's prefixes)
    in_worktree: bool = False  # use orch's worktree as checked out (git bisect run)
    committed: bool = False  # a checkout's committed state only (not its uncommitted edits)
    target: str | None = None  # qemu, or ssh://[user@]host[:port]
    # A target's own options (declared once, in its module's OPTIONS): dest -> value.
    target_options: dict[str, Any] = field(default_factory=dict)
    # --coverage: None (no coverage build), or the files to profile beyond the series' own.
    coverage: list[str] | None = None

    def __post_init__(self) -> None:
        # A coverage build is a config profile (configs/coverage.config): its own cell,
        # build dir and kernel key.
        if self.coverage is not None and "coverage" not in self.profiles:
            self.profiles = [*self.profiles, "coverage"]

    def __getattr__(self, name: str) -> Any:
        """`opts.reboot_cmd` and the like: a target's option, or its declared default."""
        opt = _TARGET_OPTS.get(name)
        if opt is None:
            raise AttributeError(name)
        return self.__dict__.get("target_options", {}).get(name, opt.parsed_default(RUN))


_TARGET_OPTS = {o.dest: o for o in TARGET_OPTIONS}


def make(**kw: Any) -> Options:
    """Options from keywords, a target's own options among them (`make(no_deploy=True)`)."""
    own = {k: kw.pop(k) for k in list(kw) if k in _TARGET_OPTS}
    return Options(**kw, target_options={**kw.pop("target_options", {}), **own})


# --- how values are written back -----------------------------------------------------

def _fmt_tree(v: str) -> str:
    return v if v in EMBEDDED else abs_path(v)


def _fmt_series(v: str) -> str:
    return v if v == "none" else abs_path(v)


def _fmt_selftests(v) -> str:
    return "none" if str(v) == "none" else abs_path(v)


def _fmt_fragment(v: str) -> str:
    # A bare name ("debug") means configs/NAME.config when no such file exists here.
    p = Path(v).expanduser()
    return str(p.resolve()) if p.exists() else v


def _fmt_arches(v) -> str:
    if isinstance(v, str):
        return v
    return ",".join(a.name for a in v)



OPTIONS: list[Opt] = [
    Opt(("--arch",), "arches", "comma-separated: x86_64, arm64 (default: x86_64)",
        type=arch_list, default={RUN: "x86_64", BISECT: "x86_64", BOOT: "x86_64"},
        fmt=_fmt_arches, example="arm64,x86_64"),
    Opt(("--tree",), "tree", "kernel git checkout, kernel tarball, or an embedded tree "
        "name: linux-6.1 (default), linux-6.12", fmt=_fmt_tree, example="linux-6.12"),
    Opt(("--base",), "base", "commit to start from (default: the checkout's HEAD, or the "
        "imported tarball)", step=False, example="v6.1"),
    Opt(("--committed",), "committed", "test only the checkout's committed state (default: "
        "its uncommitted changes too, as a final change after the series)", kind="flag",
        default=False, commands=(RUN, BOOT), example=True),
    Opt(("--series",), "series", "series dir (quilt `series` file or *.patch), an mbox, or "
        "'none' (default: patches/uffd-move on the embedded linux-6.1 tree, else none)",
        fmt=_fmt_series, step=False, example="none"),
    Opt(("--config",), "configs", "extra Kconfig fragment (repeatable)", kind="append",
        default=[], metavar="FRAGMENT", fmt=_fmt_fragment, example=["/tmp/a.config", "kvm"]),
    Opt(("--debug",), "profiles", "add configs/debug.config (lockdep, KASAN, DEBUG_VM...)",
        kind="const", const="debug", default=[], example=["debug"]),
    Opt(("--coverage",), "coverage", "a coverage build (GCOV) profiling the C files the "
        "series changes, plus =FILE,... ; per-patch line coverage of the tests (summary.md, "
        "results.json, coverage.xml)", kind="optional", type=coverage_files, const=[],
        metavar="FILE,...", fmt=",".join, commands=(RUN,), example=["mm/mmap.c"]),
    Opt(("--output", "-o"), "output", "output dir (default: orch-out/<time>)", type=Path,
        fmt=abs_path, step=False, reproduce=False, example=Path("/tmp/o")),
    Opt(("--selftests",), "selftests", "directory of *.c selftests (default: orch's "
        "selftests/), or 'none'", type=Path, default=SELFTESTS, fmt=_fmt_selftests,
        example=Path("/tmp/st")),
    Opt(("--kselftest",), "kselftest", "the kernel's own selftests: COLLECTION (as "
        "run_kselftest.sh runs it), COLLECTION:PROG[,PROG], 'COLLECTION:PROG ARGS...', or "
        "mm:@CATEGORY (run_vmtests.sh -t); repeatable", kind="append", default=[],
        metavar="SPEC", example=["mm:uffd-unit-tests", "mm:@userfaultfd"]),
    Opt(("--kselftest-tree",), "kselftest_tree", "the tree the kselftests come from "
        "(default: the tree under test, with its series): an embedded name, a checkout or "
        "a tarball", fmt=_fmt_tree, metavar="TREE", example="linux-6.12"),
    Opt(("--kselftest-timeout",), "kselftest_timeout", "seconds per kselftest program, "
        "instead of its collection's `settings` (run_kselftest.sh --override-timeout)",
        type=test_seconds, example=600.0),
    Opt(("--jobs", "-j"), "jobs", "make -j (default: all CPUs)", type=positive_int,
        example=3),
    Opt(("--accel",), "accel", "auto: KVM when a probe shows it really boots a kernel, "
        "else TCG", default="auto", choices=("auto", "kvm", "tcg"), example="tcg"),
    Opt(("--memory",), "memory", "guest memory, QEMU's -m syntax (default: 1G)",
        type=memory, default="1G", example="768M"),
    Opt(("--smp",), "smp", "guest CPUs (default: 2)", type=smp, default="2", example=3),
    Opt(("--append",), "append", "extra kernel command line", type=kernel_append, default="",
        example="loglevel=7 orch.x=1"),
    Opt(("--boot-timeout",), "boot_timeout", "seconds until init must be up (default: 180)",
        type=seconds, default="180", example=91.5),
    Opt(("--ssh-timeout",), "ssh_timeout", "seconds for SSH to answer once init is up "
        "(default: 60)", type=seconds, default="60", example=33.0),
    Opt(("--test-timeout",), "test_timeout", "seconds per test binary before it is killed "
        "(default: 300)", type=test_seconds, default="300", commands=(RUN, BISECT),
        example=77.0),
    Opt(("--dry-run",), "dry_run", "print every command that would run, run nothing",
        kind="flag", default=False, reproduce=False, example=True),
    Opt(("--quiet", "-q"), "quiet", "errors only", kind="flag", default=False, step=False,
        reproduce=False, example=True),
    Opt(("--junit",), "junit", "JUnit XML path (default: OUTPUT/junit.xml)", type=Path,
        fmt=abs_path, commands=(RUN,), step=False, reproduce=False, example=Path("/tmp/j.xml")),
    Opt(("--test",), "tests", "only this test binary (repeatable; for bisect: the test that "
        "decides good/bad)", kind="append", metavar="NAME", commands=(RUN, BISECT),
        example=["vma_merge", "uffd_move"]),
    Opt(("--bisect-exit",), "bisect_exit", "exit 0 good / 1 bad / 125 cannot test / 128 "
        "abort, for `git bisect run`", kind="flag", default=False, commands=(RUN,),
        step=False, example=True),
    Opt(("--retries",), "retries", "re-boot and re-test N times when a test fails; "
        "fail-then-pass is reported as flaky (default: 0; orch bisect: 1)", type=count,
        default={RUN: "0", BISECT: "1"}, commands=(RUN, BISECT), example=2),
    Opt(("--repeat",), "repeat", "run each test binary N times in one boot: a failure in "
        "any run fails it, a pass is N passes (a bug that shows only sometimes, as a fuzz "
        "reproducer's may) (default: 1)", type=positive_int, default="1",
        commands=(RUN, BISECT), metavar="N", example=3),
    Opt(("--good",), "good", "known good commit (commit bisection)", commands=(BISECT,),
        step=False, example="v6.1"),
    Opt(("--bad",), "bad", "known bad commit (commit bisection)", commands=(BISECT,),
        step=False, example="HEAD"),
    Opt(("--command", "-c"), "command", "run this command in the guest instead of a shell; "
        "exit with its status", commands=(BOOT,), step=False, example="uname -a"),
    Opt(("--target",), "target", "where the tests run: qemu (default), or "
        "ssh://[user@]host[:port] (a ~/.ssh/config host works): the kernel is deployed "
        "there by kexec", example="ssh://root@board.lab:2222"),
    *TARGET_OPTIONS,
    Opt(("--in-worktree",), "in_worktree", "", kind="flag", default=False,
        commands=(RUN,), step=False, reproduce=False, hidden=True, example=True),
    Opt(("--steps-log",), "steps_log", "", type=Path, commands=(RUN,), step=False,
        reproduce=False, hidden=True, example=Path("/tmp/steps.jsonl")),
    Opt(("--plan",), "plan", "a plan file (configs/plans/*.yaml, or a shipped plan's name); "
        "with --cell, run that cell", commands=(RUN,), step=False, reproduce=False,
        example="default"),
    Opt(("--cell",), "cell", "the plan's cell to run (`orch plan FILE` lists them)",
        commands=(RUN,), step=False, reproduce=False, example="x86_64-6.1-uffd-move"),
]

def options_for(cmd: str) -> list[Opt]:
    return [o for o in OPTIONS if cmd in o.commands]


def command_line(cmd: str, values, *, keep: Callable[[Opt], bool] = lambda o: True,
                 always: tuple[str, ...] = (), overrides: dict | None = None) -> list[str]:
    """Write `values` (a parsed Namespace, or pipeline.Options: same attribute names) back
    as `orch CMD ...` words, in table order; an option is written when its value differs
    from CMD's default, or when its dest is in `always`."""
    overrides = overrides or {}
    argv = ["orch", cmd]
    for o in options_for(cmd):
        if not keep(o):
            continue
        if o.dest in overrides:
            value = overrides[o.dest]
        elif hasattr(values, o.dest):
            value = getattr(values, o.dest)
        else:
            continue
        words = o.tokens(value)
        if o.dest not in always and words == o.tokens(o.parsed_default(cmd)):
            continue
        argv += words
    return argv


def bisect_step_argv(values) -> list[str]:
    """The user's options that a commit-bisection step keeps (everything but the
    bisection's own and where output goes), as `orch run` words without the leading
    `orch run`."""
    return command_line(RUN, values, keep=lambda o: o.step)[2:]


def options_from(args: argparse.Namespace, argv: list[str]) -> Options:
    """What the parsed command line asks a run to do."""
    names = {f.name for f in fields(Options)}
    kw = {o.dest: getattr(args, o.dest) for o in OPTIONS
          if o.dest in names and hasattr(args, o.dest)}
    if kw.get("series") is None:
        kw["series"] = default_series(args)
    kw["configs"] = list(kw.get("configs") or [])
    kw["target_options"] = {o.dest: getattr(args, o.dest) for o in TARGET_OPTIONS
                            if hasattr(args, o.dest)}
    return Options(**kw, argv=["orch", *argv])


