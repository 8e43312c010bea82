"""`orch report DIR`: the results page of a run or a merge (orchestrator.results.page)."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.results import page

NAME = "report"
HELP = "write the results page (one self-contained HTML file) of a run or a merge"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, metavar="DIR",
                   help="an orch output directory (a run's, a merge's) or its results.json")
    p.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help=f"where the page goes (default: DIR/{page.FILENAME}; a directory: "
                        f"FILE/{page.FILENAME})")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    print(page.report(args.dir, args.output))
    return 0
