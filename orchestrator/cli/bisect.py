"""`orch bisect`: the first bad patch of a series, or the first bad commit of a tree
(orchestrator.run.bisect does the searching)."""

from __future__ import annotations

import argparse

from orchestrator.base.errors import UsageError
from orchestrator.base.opt import BISECT
from orchestrator.cli.common import add_run_options
from orchestrator.options import options_from
from orchestrator.run.bisect import bisect_commits, bisect_series
from orchestrator.run.pipeline import default_output

NAME = BISECT
HELP = "first bad patch of a series, or first bad commit"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_options(p, BISECT)


def main(args: argparse.Namespace, argv: list[str]) -> int:
    opts = options_from(args, argv)
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
