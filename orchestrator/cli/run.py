"""`orch run`: apply, configure, build, boot, test and report one cell per arch (or the
plan cell named by --plan/--cell)."""

from __future__ import annotations

import argparse

from orchestrator.base.opt import RUN
from orchestrator.cli.common import Parser, add_run_options
from orchestrator.options import options_from
from orchestrator.plan.command import cell_command
from orchestrator.run.bisect import bisect_exit, record_step
from orchestrator.run.pipeline import Run

NAME = RUN
HELP = "apply, build, boot, test, report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_options(p, RUN)


def main(args: argparse.Namespace, argv: list[str]) -> int:
    if args.plan or args.cell:
        cell_argv = cell_command(args)  # ["run", options...]
        p = Parser(prog="orch run")
        add_arguments(p)
        args = p.parse_args(cell_argv[1:])
    run = Run(options_from(args, argv))
    code = run.execute()
    if args.steps_log:
        record_step(args.steps_log, run.state, code)
    if args.bisect_exit:
        return bisect_exit(run.state, code)
    return code
