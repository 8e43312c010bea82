"""Command line: parse, build a Run, execute, map the outcome to an exit code.

Every option of `orch run`, `orch bisect` and `orch boot` is one entry of OPTIONS. The
table is used both ways, as tuxmake's CommandLine.reproduce does: it builds the argparse
parsers, and it writes an option set back as a command line (`command_line()`), which is
how a commit-bisection step gets exactly the user's options and how metadata.json's
`reproduce` is made. Adding an option is one Opt entry (plus, when the run needs it, the
Options field of the same name in pipeline.py).
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys
import traceback
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from orchestrator import __version__
from orchestrator.kernel import arch as archmod
from orchestrator.base.errors import (
    BISECT_ABORT,
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Interrupted,
    OrchError,
    UsageError,
)
from orchestrator.base.paths import PATCHES, SELFTESTS
from orchestrator.base.runner import install_signal_handlers
from orchestrator.kernel.tree import DEFAULT_TREE, EMBEDDED

# The project's UFFDIO_MOVE series for 6.1 is what `orch run` tests by default.
DEFAULT_SERIES = str(PATCHES / "uffd-move")

# Linux's COMMAND_LINE_SIZE is 2048 on x86_64 and arm64; orch's own part is under 100.
MAX_APPEND = 1900
MIN_MEMORY_MIB = 128


def default_series(args) -> str:
    """The project's series is written for the embedded 6.1 tree: it is the default there
    and only there (another tree, or git bisect's checkout, starts with no series)."""
    if getattr(args, "in_worktree", False):
        return "none"
    if args.tree in (None, DEFAULT_TREE) and args.base is None:
        return DEFAULT_SERIES
    return "none"


# --- value checks (argparse turns ArgumentTypeError into a usage error naming the option)

def _arches(value: str) -> list[archmod.Arch]:
    try:
        return archmod.parse_list(value)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(value: str, kind=float):
    try:
        x = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number") from None
    if isinstance(x, float) and not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"'{value}' is not a finite number")
    return x


def _seconds(value: str) -> float:
    x = _number(value)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"'{value}': needs a number of seconds above 0")
    return x


def _test_seconds(value: str) -> float:
    x = _number(value)
    if x < 1:  # the guest's timeout(1) gets whole seconds; 0 would mean "no timeout"
        raise argparse.ArgumentTypeError(f"'{value}': needs at least 1 second")
    return x


def _positive_int(value: str) -> int:
    x = _number(value, int)
    if x < 1:
        raise argparse.ArgumentTypeError(f"'{value}': needs a whole number of at least 1")
    return x


def _count(value: str) -> int:
    x = _number(value, int)
    if x < 0:
        raise argparse.ArgumentTypeError(f"'{value}': needs a whole number of at least 0")
    return x


def _smp(value: str) -> int:
    x = _positive_int(value)
    top = max(a.max_cpus for a in archmod.ARCHES.values())
    if x > top:
        raise argparse.ArgumentTypeError(f"'{value}': QEMU's machines take at most {top} CPUs")
    return x


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$", re.I)
_UNIT_MIB = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def memory_mib(value: str) -> float:
    """QEMU's -m syntax: a number of MiB, or with a K/M/G/T suffix."""
    m = _SIZE_RE.match(value.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"'{value}' is not a size (examples: 1G, 512M)")
    return float(m.group(1)) * _UNIT_MIB[m.group(2).upper()]


def _size(value: str) -> str:
    memory_mib(value)
    return value.strip()


def host_memory_mib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _memory(value: str) -> str:
    mib = memory_mib(value)
    if mib < MIN_MEMORY_MIB:
        raise argparse.ArgumentTypeError(f"'{value}': a guest needs at least "
                                         f"{MIN_MEMORY_MIB}M to boot orch's initramfs")
    host = host_memory_mib()
    if host and mib > host:
        raise argparse.ArgumentTypeError(f"'{value}': more than this host's "
                                         f"{host / 1024:.1f}G of memory")
    return value.strip()


def _append(value: str) -> str:
    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7f), None)
    if bad is not None:
        raise argparse.ArgumentTypeError(f"control character {bad!r} in the kernel command "
                                         f"line")
    if len(value) > MAX_APPEND:
        raise argparse.ArgumentTypeError(f"{len(value)} characters: the kernel command line "
                                         f"holds at most {MAX_APPEND} extra")
    return value


# --- how values are written back -----------------------------------------------------

def _abs(v) -> str:
    return str(Path(v).expanduser().resolve())


def _fmt_tree(v: str) -> str:
    return v if v in EMBEDDED else _abs(v)


def _fmt_series(v: str) -> str:
    return v if v == "none" else _abs(v)


def _fmt_fragment(v: str) -> str:
    # A bare name ("debug") means configs/NAME.config when no such file exists here.
    p = Path(v).expanduser()
    return str(p.resolve()) if p.exists() else v


def _fmt_arches(v) -> str:
    if isinstance(v, str):
        return v
    return ",".join(a.name for a in v)


RUN, BISECT, BOOT = "run", "bisect", "boot"
ALL = (RUN, BISECT, BOOT)


@dataclass(frozen=True)
class Opt:
    """One command-line option.

    kind: "value" (takes one value), "append" (repeatable, a list), "flag" (store_true),
    "const" (a flag that appends `const` to the list `dest`, shared by several flags).
    step: passed to a commit-bisection step (`orch run --in-worktree`); False for the
    bisection's own options and for those the step sets itself (-o, -q, --series).
    reproduce: part of metadata.json's `reproduce` command (False for where output goes).
    example: a non-default value, used by the tests that check the table round-trips.
    """

    flags: tuple[str, ...]
    dest: str
    help: str
    kind: str = "value"
    type: Callable[[str], Any] | None = None
    default: Any = None  # or a dict: command -> default
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    const: Any = None
    commands: tuple[str, ...] = ALL
    fmt: Callable[[Any], str] = str
    step: bool = True
    reproduce: bool = True
    hidden: bool = False
    example: Any = None

    def default_for(self, cmd: str):
        if isinstance(self.default, dict):
            return self.default.get(cmd)
        return self.default

    def parsed_default(self, cmd: str):
        d = self.default_for(cmd)
        if isinstance(d, str) and self.type is not None:
            return self.type(d)
        return d

    def tokens(self, value) -> list[str]:
        """The command-line words for `value` (empty when there is nothing to say)."""
        flag = self.flags[0]
        if self.kind == "flag":
            return [flag] if value else []
        if self.kind == "const":
            return [flag] if value and self.const in value else []
        if value is None:
            return []
        if self.kind == "append":
            return [w for v in value for w in (flag, self.fmt(v))]
        return [flag, self.fmt(value)]


OPTIONS: list[Opt] = [
    Opt(("--arch",), "arches", "comma-separated: x86_64, arm64 (default: x86_64)",
        type=_arches, default={RUN: "x86_64", BISECT: "x86_64", BOOT: "x86_64"},
        fmt=_fmt_arches, example="arm64,x86_64"),
    Opt(("--tree",), "tree", "kernel git checkout, kernel tarball, or an embedded tree "
        "name: linux-6.1 (default), linux-6.12", fmt=_fmt_tree, example="linux-6.12"),
    Opt(("--base",), "base", "commit to start from (default: the checkout's HEAD, or the "
        "imported tarball)", step=False, example="v6.1"),
    Opt(("--series",), "series", "series dir (quilt `series` file or *.patch), an mbox, or "
        "'none' (default: patches/uffd-move on the embedded linux-6.1 tree, else none)",
        fmt=_fmt_series, step=False, example="none"),
    Opt(("--config",), "configs", "extra Kconfig fragment (repeatable)", kind="append",
        default=[], metavar="FRAGMENT", fmt=_fmt_fragment, example=["/tmp/a.config", "kvm"]),
    Opt(("--debug",), "profiles", "add configs/debug.config (lockdep, KASAN, DEBUG_VM...)",
        kind="const", const="debug", default=[], example=["debug"]),
    Opt(("--output", "-o"), "output", "output dir (default: orch-out/<time>)", type=Path,
        fmt=_abs, step=False, reproduce=False, example=Path("/tmp/o")),
    Opt(("--selftests",), "selftests", "directory of *.c selftests (default: orch's "
        "selftests/)", type=Path, default=SELFTESTS, fmt=_abs, example=Path("/tmp/st")),
    Opt(("--jobs", "-j"), "jobs", "make -j (default: all CPUs)", type=_positive_int,
        example=3),
    Opt(("--accel",), "accel", "auto: KVM when a probe shows it really boots a kernel, "
        "else TCG", default="auto", choices=("auto", "kvm", "tcg"), example="tcg"),
    Opt(("--memory",), "memory", "guest memory, QEMU's -m syntax (default: 1G)",
        type=_memory, default="1G", example="768M"),
    Opt(("--smp",), "smp", "guest CPUs (default: 2)", type=_smp, default="2", example=3),
    Opt(("--append",), "append", "extra kernel command line", type=_append, default="",
        example="loglevel=7 orch.x=1"),
    Opt(("--boot-timeout",), "boot_timeout", "seconds until init must be up (default: 180)",
        type=_seconds, default="180", example=91.5),
    Opt(("--ssh-timeout",), "ssh_timeout", "seconds for SSH to answer once init is up "
        "(default: 60)", type=_seconds, default="60", example=33.0),
    Opt(("--test-timeout",), "test_timeout", "seconds per test binary before it is killed "
        "(default: 300)", type=_test_seconds, default="300", commands=(RUN, BISECT),
        example=77.0),
    Opt(("--dry-run",), "dry_run", "print every command that would run, run nothing",
        kind="flag", default=False, reproduce=False, example=True),
    Opt(("--quiet", "-q"), "quiet", "errors only", kind="flag", default=False, step=False,
        reproduce=False, example=True),
    Opt(("--junit",), "junit", "JUnit XML path (default: OUTPUT/junit.xml)", type=Path,
        fmt=_abs, commands=(RUN,), step=False, reproduce=False, example=Path("/tmp/j.xml")),
    Opt(("--test",), "tests", "only this test binary (repeatable; for bisect: the test that "
        "decides good/bad)", kind="append", metavar="NAME", commands=(RUN, BISECT),
        example=["vma_merge", "uffd_move"]),
    Opt(("--bisect-exit",), "bisect_exit", "exit 0 good / 1 bad / 125 cannot test / 128 "
        "abort, for `git bisect run`", kind="flag", default=False, commands=(RUN,),
        step=False, example=True),
    Opt(("--retries",), "retries", "re-boot and re-test N times when a test fails; "
        "fail-then-pass is reported as flaky (default: 0; orch bisect: 1)", type=_count,
        default={RUN: "0", BISECT: "1"}, commands=(RUN, BISECT), example=2),
    Opt(("--good",), "good", "known good commit (commit bisection)", commands=(BISECT,),
        step=False, example="v6.1"),
    Opt(("--bad",), "bad", "known bad commit (commit bisection)", commands=(BISECT,),
        step=False, example="HEAD"),
    Opt(("--command", "-c"), "command", "run this command in the guest instead of a shell; "
        "exit with its status", commands=(BOOT,), step=False, example="uname -a"),
    Opt(("--target",), "target", "where the tests run: qemu (default), or "
        "ssh://[user@]host[:port] (a ~/.ssh/config host works): the kernel is deployed "
        "there by kexec", example="ssh://root@board.lab:2222"),
    Opt(("--known-hosts",), "known_hosts", "--target ssh: the known_hosts file to check the "
        "machine's host key against (default: ~/.ssh/known_hosts); an unknown key is never "
        "accepted", type=Path, fmt=_abs, example=Path("/tmp/known_hosts")),
    Opt(("--no-deploy",), "no_deploy", "--target ssh: test the kernel already running "
        "there (a distro or vendor kernel)", kind="flag", default=False, example=True),
    Opt(("--reboot-cmd",), "reboot_cmd", "--target ssh: instead of kexec, run this command "
        "here to install the kernel ($ORCH_KERNEL) and reboot the machine", metavar="CMD",
        example="lab-deploy board"),
    Opt(("--target-initrd",), "target_initrd", "--target ssh: an initrd on the machine for "
        "the kexec'd kernel (default: none)", metavar="PATH", example="/boot/initrd.img"),
    Opt(("--reboot-after",), "reboot_after", "--target ssh: reboot the machine when done "
        "(back to its own kernel); default: leave it running the tested kernel", kind="flag",
        default=False, commands=(RUN,), example=True),
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


class _Parser(argparse.ArgumentParser):
    """Usage errors in orch's one-line form, exit 2."""

    def error(self, message: str):  # noqa: D401
        m = re.match(r"argument ([^:]+): (.*)", message, re.S)
        if m:
            flag = m.group(1).split("/")[0]
            message = f"{flag}: {m.group(2)}"
        self.exit(EXIT_USAGE, f"orch: usage: {message} (see `{self.prog} --help`)\n")


def _add(p: argparse.ArgumentParser, cmd: str) -> None:
    for o in options_for(cmd):
        kw: dict[str, Any] = {"dest": o.dest,
                              "help": argparse.SUPPRESS if o.hidden else o.help}
        if o.kind == "flag":
            kw.update(action="store_true", default=o.default_for(cmd))
        elif o.kind == "const":
            kw.update(action="append_const", const=o.const, default=[])
        else:
            default = o.default_for(cmd)
            if o.kind == "append":
                kw["action"] = "append"
                default = list(default) if default is not None else None
            kw["default"] = default
            if o.type is not None:
                kw["type"] = o.type
            if o.choices:
                kw["choices"] = o.choices
            if o.metavar:
                kw["metavar"] = o.metavar
        p.add_argument(*o.flags, **kw)


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="orch", description=__doc__.split("\n")[0])
    ap.add_argument("--version", action="version", version=f"orch {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    helps = {RUN: "apply, build, boot, test, report",
             BISECT: "first bad patch of a series, or first bad commit",
             BOOT: "build and boot, then a shell in the guest over SSH"}
    for cmd in (RUN, BISECT, BOOT):
        _add(sub.add_parser(cmd, help=helps[cmd]), cmd)
    mrg = sub.add_parser("merge", help="combine runs (CI artifacts) into one results.json, "
                         "junit.xml and summary.md")
    mrg.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                     help="orch output directories, or directories holding them")
    mrg.add_argument("--output", "-o", type=Path, required=True, help="output directory")
    mrg.add_argument("--kcidb", type=Path, metavar="FILE",
                     help="also write the runs as a KCIDB document (JSON)")
    cmp = sub.add_parser("compare", help="what changed between two runs or merges")
    cmp.add_argument("base", type=Path, metavar="BASE")
    cmp.add_argument("new", type=Path, metavar="NEW")
    cmp.add_argument("--output", "-o", type=Path,
                     help="where compare.md and compare.json go (default: NEW)")
    pl = sub.add_parser("plan", help="print a plan's cells for a CI matrix")
    pl.add_argument("file", help="plan file, or the name of one in configs/plans/")
    pl.add_argument("--format", default="json",
                    choices=("json", "github", "gitlab", "names"),
                    help="json: the cells; github: a matrix for fromJSON(); gitlab: a "
                    "child pipeline; names: cell names, one a line (default: json)")
    pl.add_argument("--side", choices=("base", "new"),
                    help="names: only the cells of this side of the plan's compare:")
    pl.add_argument("--template", default="ci/gitlab-jobs.yml",
                    help="gitlab: the job templates the child pipeline includes")
    doc = sub.add_parser("doctor", help="what is installed, does KVM really work, cache size")
    doc.add_argument("--arch", default="x86_64,arm64", type=_arches, dest="arches")
    gcp = sub.add_parser("gc", help="prune the cache: worktrees whose origin is gone, "
                         "kernels and selftest builds unused for N days, ccache to a cap")
    gcp.add_argument("--days", type=_count, default=14,
                     help="remove kernels, selftest builds and initramfs images unused for "
                     "this many days (default: 14; 0: all that no running orch holds)")
    gcp.add_argument("--ccache-max", type=_size, default="5G",
                     help="trim ccache to this size (default: 5G)")
    gcp.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    return ap


def options_from(args: argparse.Namespace, argv: list[str]):
    from orchestrator.run.pipeline import Options

    names = {f.name for f in fields(Options)}
    kw = {o.dest: getattr(args, o.dest) for o in OPTIONS
          if o.dest in names and hasattr(args, o.dest)}
    if kw.get("series") is None:
        kw["series"] = default_series(args)
    kw["configs"] = list(kw.get("configs") or [])
    return Options(**kw, argv=["orch", *argv])


def internal_error(exc: BaseException, bisect_exit: bool) -> int:
    """A bug in orch: one line (the traceback above it is for the bug report). Under
    --bisect-exit it aborts the bisection: git bisect would read 3 as "bad"."""
    print(f"orch: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return BISECT_ABORT if bisect_exit else EXIT_INFRA


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        # A usage error under --bisect-exit aborts the bisection: git bisect reads 2 as bad.
        if exc.code == EXIT_USAGE and "--bisect-exit" in argv:
            return BISECT_ABORT
        raise
    install_signal_handlers()
    bisect_exit = getattr(args, "bisect_exit", False)
    try:
        if args.cmd == "doctor":
            from orchestrator.cli.doctor import doctor

            return doctor(args.arches)
        if args.cmd == "gc":
            from orchestrator.store.gc import gc

            return gc(args.days, args.ccache_max, args.dry_run)
        if args.cmd == "merge":
            from orchestrator.results import merge

            return merge.run(args.dirs, args.output, shlex.join(["orch", *argv]), args.kcidb)
        if args.cmd == "compare":
            from orchestrator.results import compare

            return compare.run(args.base, args.new, args.output)
        if args.cmd == "plan":
            from orchestrator.plan.model import plan_cmd

            return plan_cmd(args)
        if getattr(args, "plan", None) or getattr(args, "cell", None):
            from orchestrator.plan.model import cell_command

            args = parser().parse_args(cell_command(args))
        from orchestrator.run.pipeline import Run, bisect_code

        opts = options_from(args, argv)
        if args.cmd == "bisect":
            return bisect_cmd(args, opts, argv)
        if args.cmd == "boot":
            from orchestrator.cli.boot import boot

            return boot(opts, args.command)
        run = Run(opts)
        code = run.execute()
        if args.steps_log:
            from orchestrator.run.bisect import record_step

            record_step(args.steps_log, run, code)
        if bisect_exit:
            errors = [st.error for st in run.states.values() if st.error]
            return bisect_code(code, errors[0] if errors else None,
                               flaky=any(st.flaky for st in run.states.values()))
        return code
    except OrchError as exc:
        print(f"orch: {exc.stage}: {exc}", file=sys.stderr)
        if bisect_exit:
            from orchestrator.run.pipeline import bisect_code

            return bisect_code(exc.exit_code, exc)
        return exc.exit_code
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"orch: {exc or 'interrupted'}", file=sys.stderr)
        return BISECT_ABORT if bisect_exit else EXIT_INTERRUPTED
    except Exception as exc:  # a bug in orch: say so, keep the traceback for the report
        traceback.print_exc()
        return internal_error(exc, bisect_exit)


def bisect_cmd(args: argparse.Namespace, opts, argv: list[str]) -> int:
    from orchestrator.run.bisect import bisect_commits, bisect_series
    from orchestrator.run.pipeline import default_output

    if not opts.tests:
        raise UsageError("orch bisect needs --test NAME (the test that decides good/bad)")
    out = (args.output or default_output()).resolve()
    if args.good or args.bad:
        if not (args.good and args.bad):
            raise UsageError("commit bisection needs both --good and --bad")
        if args.series not in (None, "none"):
            raise UsageError("give either --series (patch bisection) or --good/--bad")
        return bisect_commits(opts, args.good, args.bad, out, ["orch", *argv])
    if args.series in (None, "none"):
        raise UsageError("orch bisect needs --series PATH, or --good REF --bad REF")
    return bisect_series(opts, args.series, out)


if __name__ == "__main__":
    sys.exit(main())
