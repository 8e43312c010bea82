"""`orch merge DIR... -o OUT`: many runs into one record (orchestrator.results.merge)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from orchestrator.results import merge

NAME = "merge"
HELP = "combine runs (CI artifacts) into one results.json, junit.xml and summary.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                   help="orch output directories, or directories holding them")
    p.add_argument("--output", "-o", type=Path, required=True, help="output directory")
    p.add_argument("--kcidb", type=Path, metavar="FILE",
                   help="also write the runs as a KCIDB document (JSON)")
    p.add_argument("--coverage", action="store_true",
                   help="every input must have patch coverage (orch run --coverage); the "
                        "union over the cells goes into results.json, summary.md and "
                        "coverage.xml (it does whenever the inputs have some)")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    return merge.run(args.dirs, args.output, shlex.join(["orch", *argv]), args.kcidb,
                     coverage=args.coverage)
