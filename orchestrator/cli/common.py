"""What the commands that run kernels share: the run options' parser entries (from the
one table in orchestrator.options) and usage errors in orch's one-line form."""

from __future__ import annotations

import argparse
import re
from typing import Any

from orchestrator.base.errors import EXIT_USAGE
from orchestrator.base.opt import Opt
from orchestrator.options import options_for


class Parser(argparse.ArgumentParser):
    """Usage errors in orch's one-line form, exit 2."""

    def error(self, message: str):  # noqa: D401
        m = re.match(r"argument ([^:]+): (.*)", message, re.S)
        if m:
            flag = m.group(1).split("/")[0]
            message = f"{flag}: {m.group(2)}"
        self.exit(EXIT_USAGE, f"orch: usage: {message} (see `{self.prog} --help`)\n")


def add_run_options(p: argparse.ArgumentParser, cmd: str) -> None:
    """Every option of the table that `cmd` takes."""
    add_options(p, options_for(cmd), cmd)


def add_options(p: argparse.ArgumentParser, opts: list[Opt], cmd: str) -> None:
    """These options of the table, with `cmd`'s defaults."""
    for o in opts:
        kw: dict[str, Any] = {"dest": o.dest,
                              "help": argparse.SUPPRESS if o.hidden else o.help}
        if o.kind == "flag":
            kw.update(action="store_true", default=o.default_for(cmd))
        elif o.kind == "const":
            kw.update(action="append_const", const=o.const, default=[])
        elif o.kind == "optional":
            kw.update(nargs="?", const=o.const, default=o.default_for(cmd), type=o.type,
                      metavar=o.metavar)
        else:
            default = o.default_for(cmd)
            if o.kind == "append":
                kw["action"] = "append"
                default = list(default) if default is not None else None
            kw["default"] = default
            if o.type is not None:
                kw["type"] = o.type
            if o.choices:
                kw["choices"] = o.choices
            if o.metavar:
                kw["metavar"] = o.metavar
        p.add_argument(*o.flags, **kw)
