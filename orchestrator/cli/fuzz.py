"""`orch fuzz`: the same random programs on the prototype and on a reference kernel; every
difference not in the allowlist is a divergence, shrunk to a C reproducer
(orchestrator.fuzz)."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from orchestrator.base.errors import UsageError
from orchestrator.base.opt import RUN, count, positive_int, seconds, seconds_or_zero
from orchestrator.base.progress import Progress
from orchestrator.cli.common import Parser, add_options
from orchestrator.fuzz import allowlist as allowmod
from orchestrator.fuzz.machines import side_options
from orchestrator.fuzz.session import Config, fuzz
from orchestrator.options import OPTIONS, options_from
from orchestrator.plan.command import fuzz_command
from orchestrator.results import record as results
from orchestrator.run.pipeline import Run, default_output

NAME = "fuzz"
HELP = "differential fuzzing of the series against a reference kernel"
DEFAULT_AGAINST = "linux-6.12"
DEFAULT_SECONDS = 120.0
# The run options that make sense for both sides of a fuzz run (the table's own entries).
RUN_DESTS = ("arches", "tree", "base", "series", "configs", "profiles", "output", "jobs",
             "accel", "memory", "smp", "append", "boot_timeout", "ssh_timeout", "quiet", "coverage")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_options(p, [o for d in RUN_DESTS for o in OPTIONS if o.dest == d], RUN)
    p.add_argument("--against", default=DEFAULT_AGAINST, metavar="TREE",
                   help=f"the reference kernel's tree (default: {DEFAULT_AGAINST})")
    p.add_argument("--against-series", default="none", metavar="S",
                   help="a series on the reference tree (default: none)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--time", type=seconds, metavar="S",
                        help=f"seconds of fuzzing per arch (default: {DEFAULT_SECONDS:.0f})")
    budget.add_argument("--programs", type=positive_int, metavar="N",
                        help="distinct programs per arch")
    p.add_argument("--seed", type=count, help="the programs' seed (default: a random one, "
                   "recorded in fuzz.json): the same seed runs the same programs")
    p.add_argument("--batch", type=positive_int, default=16, metavar="N",
                   help="programs per executor call (default: 16)")
    p.add_argument("--program-timeout", type=seconds, default=10.0, metavar="S",
                   help="seconds before a program counts as hung (default: 10)")
    p.add_argument("--shrink-time", type=seconds_or_zero, default=300.0, metavar="S",
                   help="seconds of shrinking per divergence signature; 0: none "
                        "(default: 300; Hypothesis stops shrinking by itself after 300 s "
                        "or 500 smaller examples found)")
    p.add_argument("--concurrent-share", type=count, default=10, metavar="N",
                   help="one program in N is a concurrent one; 0: none (default: 10)")
    p.add_argument("--allowlist", type=Path, default=allowmod.DEFAULT, metavar="FILE",
                   help="the documented differences (default: configs/fuzz-allowlist.yaml)")
    p.add_argument("--no-base-check", dest="base_check", action="store_false",
                   help="do not run the divergences' programs on the prototype's tree "
                        "without its series (by default they are, and a difference the "
                        "base kernel shows too is recorded as the base's, not a failure)")
    p.add_argument("--suite-coverage", type=Path, metavar="DIR",
                   help="with --coverage: an `orch run --coverage` output directory whose "
                        "coverage of the series is shown beside the fuzzing's")
    p.add_argument("--plan", help="a plan file (or a shipped plan's name); with --cell, "
                   "fuzz that cell for its plan's budget (fuzz:) against its compare: base "
                   "cell; nothing when it has no budget")
    p.add_argument("--cell", help="the plan's cell")


def config(args: argparse.Namespace, argv: list[str]) -> Config:
    base = options_from(args, argv)
    out = (args.output or default_output()).resolve()
    allowmod.load(args.allowlist)  # a bad allowlist: exit 2 before anything slow
    suite = None
    if args.suite_coverage is not None:
        if base.coverage is None:
            raise UsageError("--suite-coverage needs --coverage (the fuzzing's own coverage "
                             "to show beside it)")
        rec = results.load(args.suite_coverage / results.FILENAME)
        if not rec.coverage:
            raise UsageError(f"{args.suite_coverage}: its results.json has no coverage "
                             f"section (an `orch run --coverage` output directory?)")
        suite = rec.coverage
    sides = (("prototype", base.tree, base.series),
             ("reference (--against, --against-series)", args.against, args.against_series))
    for name, tree, series in sides:
        try:
            Run(side_options(base, base.arches[0], tree, series, out)).validate()
        except UsageError as exc:
            raise UsageError(f"the {name}: {exc}", stage="fuzz") from None
    return Config(base=base, against=args.against, against_series=args.against_series,
                  out=out, seed=args.seed if args.seed is not None else
                  int.from_bytes(os.urandom(4), "big"),
                  seconds=None if args.programs else (args.time or DEFAULT_SECONDS),
                  programs=args.programs, batch=args.batch, timeout=args.program_timeout,
                  shrink_seconds=args.shrink_time, concurrent_share=args.concurrent_share,
                  allowlist=args.allowlist, base_check=args.base_check,
                  suite_coverage=suite)


def main(args: argparse.Namespace, argv: list[str]) -> int:
    if args.plan or args.cell:
        if not args.plan:
            raise UsageError("--cell needs --plan FILE")
        words = fuzz_command(args.plan, args.cell, argv[1:])
        if words is None:
            print(f"orch fuzz: cell {args.cell} of {args.plan} has no fuzz budget: nothing "
                  f"to do")
            return 0
        p = Parser(prog="orch fuzz")
        add_arguments(p)
        argv = ["fuzz", *words]
        args = p.parse_args(words)
    cfg = config(args, argv)
    progress = Progress(quiet=cfg.base.quiet)
    progress.line(f"orch fuzz: seed {cfg.seed}, output {cfg.out}")
    return fuzz(cfg, progress, shlex.join(["orch", *argv]))
