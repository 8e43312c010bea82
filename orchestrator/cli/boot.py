"""`orch boot`: the run's stages (the same records, run/stages.py) up to a booted or
deployed kernel, then a shell on the target (or one command)."""

from __future__ import annotations

import argparse
import sys

from orchestrator.base.errors import EXIT_INFRA, EXIT_PASS, EXIT_USAGE
from orchestrator.base.opt import BOOT
from orchestrator.cli.common import add_run_options
from orchestrator.options import Options, options_from
from orchestrator.run.pipeline import Run

NAME = BOOT
HELP = "build and boot, then a shell in the guest over SSH"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_options(p, BOOT)


def main(args: argparse.Namespace, argv: list[str]) -> int:
    return boot(options_from(args, argv), args.command)


def boot(opts: Options, command: str | None) -> int:
    if len(opts.arches) != 1:
        print("orch: boot takes exactly one --arch", file=sys.stderr)
        return EXIT_USAGE
    run = Run(opts)
    state = run.state
    if state.target.kind == "lava":
        print("orch: usage: orch boot --target lava: a LAVA job runs the tests itself, it "
              "gives no shell (use orch run)", file=sys.stderr)
        return EXIT_USAGE
    st = next(iter(state.states.values()))
    code = run.execute(until="boot")
    if opts.dry_run or st.machine is None:
        return code if code != EXIT_PASS or opts.dry_run else EXIT_INFRA
    try:
        sess = st.machine.session
        if command is not None:
            res = sess.run(command)
            sys.stdout.write(res.stdout)
            sys.stderr.write(res.stderr)
            return res.exit_code if res.exit_code is not None else EXIT_INFRA
        where = "guest; exit to power off" if state.target.kind == "qemu" else \
            f"{state.target.cell().get('host')}; exit to leave it running"
        state.progress.line(f"[{st.arch.name}] shell on the {where}")
        return sess.interactive(state.out / "known_hosts")
    finally:
        run.close_machine(st)
