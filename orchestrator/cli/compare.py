"""`orch compare BASE NEW`: what changed between two runs or merges
(orchestrator.results.compare)."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.results import compare

NAME = "compare"
HELP = "what changed between two runs or merges"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", type=Path, metavar="BASE")
    p.add_argument("new", type=Path, metavar="NEW")
    p.add_argument("--output", "-o", type=Path,
                   help="where compare.md and compare.json go (default: NEW)")
    p.add_argument("--coverage", action="store_true",
                   help="both sides must have patch coverage (orch run --coverage); the "
                        "lines gained and lost are shown (they are whenever both have it)")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    return compare.run(args.base, args.new, args.output, coverage=args.coverage)
