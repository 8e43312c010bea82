"""`orch plan FILE`: a plan's cells for a CI matrix, in the format a CI system reads
(orchestrator.plan)."""

from __future__ import annotations

import argparse

from orchestrator.plan.command import plan_cmd
from orchestrator.plan.emit import DEFAULT_TEMPLATE, FORMATS

NAME = "plan"
HELP = "print a plan's cells for a CI matrix"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="plan file, or the name of one in configs/plans/")
    p.add_argument("--format", default="json", choices=tuple(FORMATS),
                   help="; ".join(f"{f.name}: {f.help}" for f in FORMATS.values())
                   + " (default: json)")
    p.add_argument("--side", choices=("base", "new"),
                   help="names: only the cells of this side of the plan's compare:")
    p.add_argument("--template", default=DEFAULT_TEMPLATE,
                   help="gitlab: the job templates the child pipeline includes")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    return plan_cmd(args)
