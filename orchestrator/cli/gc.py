"""`orch gc`: keep the cache in bounds (orchestrator.store.gc)."""

from __future__ import annotations

import argparse

from orchestrator.base.opt import count, size
from orchestrator.kernel import verify
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
    p.add_argument("--verify", nargs="*", metavar="KEY",
                   help="instead of pruning: rebuild these stored kernels (all when no KEY "
                   "is given) cold from the source tree and .config their kernel.json "
                   "records, compare the images' sha256 and remove any that differs. "
                   "Exit 0 all match, 1 a mismatch, 3 some could not be rebuilt")
    p.add_argument("--ccache", action="store_true",
                   help="with --verify: let the rebuild use ccache (faster; by default "
                   "nothing of the first build is reused)")
    p.add_argument("-j", "--jobs", type=count, default=None,
                   help="with --verify: make's jobs (default: the number of CPUs)")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    if args.verify is not None:
        return verify.verify(args.verify, use_ccache=args.ccache, jobs=args.jobs,
                             remove=not args.dry_run)
    return gc(args.days, args.ccache_max, args.dry_run)
