"""Command line: parse, build a Run, execute, map the outcome to an exit code."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from . import __version__
from . import arch as archmod
from .errors import EXIT_INFRA, EXIT_INTERRUPTED, OrchError
from .paths import PATCHES, SELFTESTS
from .runner import install_signal_handlers
from .tree import DEFAULT_TREE

# The project's UFFDIO_MOVE series for 6.1 is what `orch run` tests by default.
DEFAULT_SERIES = str(PATCHES / "uffd-move")


def default_series(args: argparse.Namespace) -> str:
    """The project's series is written for the embedded 6.1 tree: it is the default there
    and only there (another tree, or git bisect's checkout, starts with no series)."""
    if getattr(args, "in_worktree", False):
        return "none"
    if args.tree in (None, DEFAULT_TREE) and args.base is None:
        return DEFAULT_SERIES
    return "none"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="x86_64",
                   help="comma-separated: x86_64, arm64 (default: x86_64)")
    p.add_argument("--tree", help="kernel git checkout, kernel tarball, or an embedded tree "
                   "name: linux-6.1 (default), linux-6.12")
    p.add_argument("--base", help="commit to start from (default: the checkout's HEAD, or "
                   "the imported tarball)")
    p.add_argument("--series", default=None,
                   help="series dir (quilt `series` file or *.patch), an mbox, or 'none' "
                   "(default: patches/uffd-move on the embedded linux-6.1 tree, else none)")
    p.add_argument("--config", action="append", default=[], metavar="FRAGMENT",
                   help="extra Kconfig fragment (repeatable)")
    p.add_argument("--debug", dest="profiles", action="append_const", const="debug",
                   default=[], help="add configs/debug.config (lockdep, KASAN, DEBUG_VM...)")
    p.add_argument("--output", "-o", type=Path, help="output dir (default: orch-out/<time>)")
    p.add_argument("--selftests", type=Path, default=SELFTESTS,
                   help="directory of *.c selftests (default: orch's selftests/)")
    p.add_argument("--jobs", "-j", type=int, help="make -j (default: all CPUs)")
    p.add_argument("--accel", default="auto", choices=["auto", "kvm", "tcg"],
                   help="auto: KVM when a probe shows it really boots a kernel, else TCG")
    p.add_argument("--memory", default="1G", help="guest memory (default: 1G)")
    p.add_argument("--smp", type=int, default=2, help="guest CPUs (default: 2)")
    p.add_argument("--append", default="", help="extra kernel command line")
    p.add_argument("--boot-timeout", type=float, default=180.0,
                   help="seconds until init must be up (default: 180)")
    p.add_argument("--ssh-timeout", type=float, default=60.0,
                   help="seconds for SSH to answer once init is up (default: 60)")
    p.add_argument("--dry-run", action="store_true",
                   help="print every command that would run, run nothing")
    p.add_argument("--quiet", "-q", action="store_true", help="errors only")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="orch", description=__doc__)
    ap.add_argument("--version", action="version", version=f"orch {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="apply, build, boot, test, report")
    _common(run)
    run.add_argument("--junit", type=Path, help="JUnit XML path (default: OUTPUT/junit.xml)")
    run.add_argument("--test", action="append", dest="tests", metavar="NAME",
                     help="run only this test binary (repeatable)")
    run.add_argument("--test-timeout", type=float, default=300.0,
                     help="seconds per test binary before it is killed (default: 300)")
    run.add_argument("--bisect-exit", action="store_true",
                     help="exit 0 good / 1 bad / 125 cannot test / 128 abort, for "
                     "`git bisect run`")
    run.add_argument("--retries", type=int, default=0,
                     help="re-boot and re-test N times when a test fails; fail-then-pass "
                     "is reported as flaky")
    run.add_argument("--in-worktree", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--steps-log", type=Path, help=argparse.SUPPRESS)

    bis = sub.add_parser("bisect", help="first bad patch of a series, or first bad commit")
    _common(bis)
    bis.add_argument("--good", help="known good commit (commit bisection)")
    bis.add_argument("--bad", help="known bad commit (commit bisection)")
    bis.add_argument("--test", action="append", dest="tests", metavar="NAME",
                     help="test binary that decides good/bad (repeatable)")
    bis.add_argument("--test-timeout", type=float, default=300.0)
    bis.add_argument("--retries", type=int, default=1,
                     help="re-test a failing step N times before calling it bad (default 1)")

    boot = sub.add_parser("boot", help="build and boot, then a shell in the guest over SSH")
    _common(boot)
    boot.add_argument("--command", "-c", help="run this command in the guest instead of a "
                      "shell; exit with its status")

    doc = sub.add_parser("doctor", help="what is installed, does KVM really work")
    doc.add_argument("--arch", default="x86_64,arm64")
    return ap


def options_from(args: argparse.Namespace, argv: list[str]):
    from .pipeline import Options

    return Options(
        arches=archmod.parse_list(args.arch),
        tree=args.tree,
        base=args.base,
        series=args.series if args.series is not None else default_series(args),
        configs=args.config,
        profiles=args.profiles,
        output=args.output,
        junit=getattr(args, "junit", None),
        selftests=args.selftests,
        tests=getattr(args, "tests", None),
        jobs=args.jobs,
        accel=args.accel,
        boot_timeout=args.boot_timeout,
        ssh_timeout=args.ssh_timeout,
        test_timeout=getattr(args, "test_timeout", 300.0),
        retries=getattr(args, "retries", 0),
        in_worktree=getattr(args, "in_worktree", False),
        memory=args.memory,
        smp=args.smp,
        append=args.append,
        dry_run=args.dry_run,
        quiet=args.quiet,
        argv=["orch", *argv],
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    install_signal_handlers()
    try:
        if args.cmd == "doctor":
            from .doctor import doctor

            return doctor(archmod.parse_list(args.arch))
        from .pipeline import Run, bisect_code

        opts = options_from(args, argv)
        if args.cmd == "bisect":
            return bisect_cmd(args, opts, argv)
        if args.cmd == "boot":
            from .interactive import boot

            return boot(opts, args.command)
        run = Run(opts)
        code = run.execute()
        if args.steps_log:
            from .bisect import record_step

            record_step(args.steps_log, run, code)
        if args.bisect_exit:
            errors = [st.error for st in run.states.values() if st.error]
            return bisect_code(code, errors[0] if errors else None,
                               flaky=any(st.flaky for st in run.states.values()))
        return code
    except OrchError as exc:
        print(f"orch: {exc.stage}: {exc}", file=sys.stderr)
        if getattr(args, "bisect_exit", False):
            from .pipeline import bisect_code

            return bisect_code(exc.exit_code, exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("orch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug in orch: say so, keep the traceback for the report
        traceback.print_exc()
        print(f"orch: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INFRA


def bisect_cmd(args: argparse.Namespace, opts, argv: list[str]) -> int:
    from .bisect import bisect_commits, bisect_series
    from .errors import UsageError
    from .pipeline import default_output

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
