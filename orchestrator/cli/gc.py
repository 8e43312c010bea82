"""`orch gc`: keep the cache in bounds (orchestrator.store.gc)."""

from __future__ import annotations

import argparse

from orchestrator.base.opt import count, size
from orchestrator.store.gc import gc

NAME = "gc"
HELP = ("prune the cache: worktrees whose origin is gone, kernels and selftest builds unused "
        "for N days, ccache to a cap")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--days", type=count, default=14,
                   help="remove kernels, selftest builds and initramfs images unused for "
                   "this many days (default: 14; 0: all that no running orch holds)")
    p.add_argument("--ccache-max", type=size, default="5G",
                   help="trim ccache to this size (default: 5G)")
    p.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    return gc(args.days, args.ccache_max, args.dry_run)
