"""orch: prototype kernel patches and test them where kernel CI does.

Apply a patch series to a kernel tree (never touching your checkout), configure and build
it for x86_64 and arm64, boot it in QEMU or deploy it to a machine over SSH, run the
selftests there, and write results.json and JUnit that CI systems and KernelCI read. The
commands are run, boot, bisect, fuzz, plan, merge, compare, report, gc, doctor and lava.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback

from orchestrator import __version__
from orchestrator.base.errors import (
    BISECT_ABORT,
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Interrupted,
    OrchError,
    bisect_code,
)
from orchestrator.base.signals import install_signal_handlers
from orchestrator.cli import (
    bisect,
    boot,
    compare,
    doctor,
    fuzz,
    gc,
    lava,
    merge,
    plan,
    report,
    run,
)
from orchestrator.cli.common import Parser

# The commands, in `orch --help` order.
COMMANDS = [run, boot, bisect, fuzz, plan, merge, compare, report, gc, doctor, lava]


def parser() -> argparse.ArgumentParser:
    first, _, rest = (__doc__ or "").partition("\n\n")
    ap = Parser(prog="orch", description=first.strip(),
                epilog=rest.strip(), formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"orch {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.NAME, help=cmd.HELP, description=cmd.HELP)
        cmd.add_arguments(p)
        p.set_defaults(func=cmd.main)
    return ap


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
    # Restored on the way out: main() called in-process (tests, a wrapper) leaves no
    # handler of orch's behind.
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    install_signal_handlers()
    bisect_exit = getattr(args, "bisect_exit", False)
    try:
        return args.func(args, argv)
    except OrchError as exc:
        print(f"orch: {exc.stage}: {exc}", file=sys.stderr)
        return bisect_code(exc.exit_code, exc) if bisect_exit else exc.exit_code
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"orch: {exc or 'interrupted'}", file=sys.stderr)
        return BISECT_ABORT if bisect_exit else EXIT_INTERRUPTED
    except Exception as exc:  # a bug in orch: say so, keep the traceback for the report
        traceback.print_exc()
        return internal_error(exc, bisect_exit)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    sys.exit(main())
