"""`orch plan FILE`: a plan's cells for a CI matrix, in the format a CI system reads
(orchestrator.plan)."""

from __future__ import annotations

import argparse

NAME = "plan"
HELP = "print a plan's cells for a CI matrix"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="plan file, or the name of one in configs/plans/")
    p.add_argument("--format", default="json", choices=("json", "github", "gitlab", "names"),
                   help="json: the cells; github: a matrix for fromJSON(); gitlab: a "
                   "child pipeline; names: cell names, one a line (default: json)")
    p.add_argument("--side", choices=("base", "new"),
                   help="names: only the cells of this side of the plan's compare:")
    p.add_argument("--template", default="ci/gitlab-jobs.yml",
                   help="gitlab: the job templates the child pipeline includes")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from orchestrator.plan.model import plan_cmd

    return plan_cmd(args)
