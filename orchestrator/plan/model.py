"""The plan package's old single module, kept as a front while callers move: it only
re-exports. orchestrator/cli/run.py imports `cell_command` from here; new code imports from
orchestrator.plan.command (the commands), .schema (`load`), .cells (`Plan`, `Cell`) and
.axes (the axis table). Delete this module once nothing imports it."""

from orchestrator.plan.axes import Entry, PlanError
from orchestrator.plan.cells import Cell, Plan
from orchestrator.plan.command import cell_command, cli_option_flags, plan_cmd
from orchestrator.plan.emit import FORMATS
from orchestrator.plan.schema import load, parse

__all__ = ["FORMATS", "Cell", "Entry", "Plan", "PlanError", "cell_command",
           "cli_option_flags", "load", "parse", "plan_cmd"]
