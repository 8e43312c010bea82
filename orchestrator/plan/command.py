"""The plan's two commands: `orch plan FILE --format F` prints a plan's cells, and
`orch run --plan F --cell N` becomes the `orch run` command line that cell stands for."""

from __future__ import annotations

import sys

from orchestrator.base.errors import UsageError
from orchestrator.options import OPTIONS, RUN, command_line, options_for
from orchestrator.plan.axes import AXES
from orchestrator.plan.emit import FORMATS, Request
from orchestrator.plan.schema import load

# What a cell decides; `orch run --plan F --cell N` takes everything else from its own line.
CELL_OWNS = (*(dest for a in AXES for dest in a.owns), "tests", "kselftest",
             "kselftest_tree", "coverage")


def cli_option_flags() -> set[str]:
    """The flags `orch run` takes: what a plan may ask of it."""
    return {f for o in OPTIONS if RUN in o.commands for f in o.flags}


def cell_command(args) -> list[str]:
    """`orch run --plan F --cell N [other options]` as the `orch run` words it stands for:
    the cell's options, then the user's own (output, accel, timeouts...)."""
    if not args.plan:
        raise UsageError("--cell needs --plan FILE")
    plan = load(args.plan, cli_options=cli_option_flags())
    if not args.cell:
        raise UsageError(f"--plan {args.plan}: give --cell NAME; cells: "
                         f"{', '.join(c.name for c in plan.cells)}")
    cell = plan.cell(args.cell)
    for o in options_for(RUN):
        if o.dest in CELL_OWNS and o.tokens(getattr(args, o.dest, None)) != \
                o.tokens(o.parsed_default(RUN)):
            raise UsageError(f"{o.flags[0]} cannot be combined with --plan: cell "
                             f"{cell.name} sets it (edit the plan, or run without --plan)")
    rest = command_line(RUN, args, keep=lambda o: o.dest not in (*CELL_OWNS, "plan", "cell"))
    return [RUN, *plan.cell_argv(cell), *rest[2:]]


# What a cell decides for `orch fuzz --plan F --cell N`: its kernel, the reference, the budget.
FUZZ_OWNS = ("--arch", "--tree", "--base", "--series", "--config", "--debug", "--against",
             "--against-series", "--time", "--programs", "--coverage")


def fuzz_command(plan_spec: str, cell_name: str | None, argv: list[str]) -> list[str] | None:
    """`orch fuzz --plan F --cell N [other options]` as the `orch fuzz` words it stands for,
    or None when the cell has no fuzz budget. `argv`: the command's words after `fuzz`."""
    plan = load(plan_spec, cli_options=cli_option_flags())
    if not cell_name:
        raise UsageError(f"--plan {plan_spec}: give --cell NAME; cells with a fuzz budget: "
                         f"{', '.join(c.name for c in plan.cells if c.fuzz) or 'none'}")
    cell = plan.cell(cell_name)
    if not cell.fuzz:
        return None
    rest, skip = [], False
    for w in argv:
        flag = w.split("=", 1)[0]
        if skip:
            skip = False
            continue
        if flag in ("--plan", "--cell"):
            skip = "=" not in w
            continue
        if flag in FUZZ_OWNS:
            raise UsageError(f"{flag} cannot be combined with --plan: cell {cell.name} sets "
                             f"it (edit the plan, or run without --plan)")
        rest.append(w)
    return [*plan.fuzz_argv(cell), *rest]


def plan_cmd(args) -> int:
    plan = load(args.file, cli_options=cli_option_flags())
    fmt = FORMATS[args.format]
    if args.side and not fmt.sides:
        raise UsageError("--side goes with --format names")
    sys.stdout.write(fmt.emit(plan, Request(args.file, args.template, args.side)))
    return 0
