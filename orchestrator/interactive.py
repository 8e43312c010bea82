"""`orch boot`: the run's stages up to a booted guest, then a shell (or one command)."""

from __future__ import annotations

import sys

from . import tree as treemod
from .errors import OrchError
from .pipeline import Options, Run


def boot(opts: Options, command: str | None) -> int:
    if len(opts.arches) != 1:
        print("orch: boot takes exactly one --arch", file=sys.stderr)
        return 2
    run = Run(opts)
    st = next(iter(run.states.values()))
    try:
        run.tree = treemod.resolve(opts.tree, run.runner, progress=run.progress.line)
        with run.tree_lock():
            run.prepare_source()
            run.build_arch(st)
        if opts.dry_run:
            return run.boot_and_test(st)
        with run.guest(st) as ssh:
            if command is not None:
                res = ssh.run(command)
                sys.stdout.write(res.stdout)
                sys.stderr.write(res.stderr)
                return res.exit_code if res.exit_code is not None else 3
            run.progress.line(f"[{st.arch.name}] shell in the guest; exit to power off")
            return ssh.interactive(run.out / "known_hosts")
    except OrchError as exc:
        run.report_error(st, exc)
        return exc.exit_code
