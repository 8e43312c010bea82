"""Synthetic orch output directories, written with orch's own record API (results.write),
for the merge, compare and golden-file tests: `write_run(dir, [(cell, {binary: {case:
status}})])` writes results.json and the KTAP logs it names."""

from pathlib import Path

from orchestrator.results import record as results
from orchestrator.results.record import Cell, Record
from orchestrator.testing import ktap, testrun
from orchestrator.testing.testrun import Suite


def ktap_text(outcomes: dict[str, str]) -> str:
    lines = ["KTAP version 1", f"1..{len(outcomes)}"]
    for i, (name, st) in enumerate(outcomes.items(), 1):
        lines.append("# time=1.000ms")
        if st == "pass":
            lines.append(f"ok {i} {name}")
        elif st == "skip":
            lines.append(f"ok {i} {name} # SKIP not here")
        else:
            lines += [f"# {name}: expected 1 VMA, found 2", f"not ok {i} {name}"]
    return "\n".join(lines) + "\n"


def write_run(d: Path, cells: list[tuple[Cell, dict[str, dict[str, str]]]]) -> Path:
    """An orch output directory as a run writes it: results.json plus the logs it names."""
    rec = Record(command="orch run")
    for cell, binaries in cells:
        rec.cells.append(cell)
        for binary, outcomes in binaries.items():
            text = ktap_text(outcomes)
            log = f"{cell.arch}/tests/{binary}.ktap"
            (d / log).parent.mkdir(parents=True, exist_ok=True)
            (d / log).write_text(text)
            s = Suite(cell.arch, binary, duration=1.0, output=text)
            s.cases = ktap.parse(text).results + [
                ktap.TestResult("dmesg_clean", "pass", kind="dmesg_clean")]
            rec.tests += testrun.record_cases(cell.id, s, f"selftests/{binary}.c",
                                                  {"output": log})
    results.write(d / "results.json", rec)
    return d


def cell(arch, tree="linux-6.1", series="uffd-move", code=0, **kw):
    return Cell(arch, tree, series=series, exit_code=code, status=results.status_of(code), **kw)


MOVE = {"uffd_move": {"basic_move": "pass", "thp_ebusy": "pass", "zeropage": "skip"},
        "vma_merge": {"new_before": "pass", "new_after": "pass"}}


def write_stage_error(d: Path, c: Cell, stage: str, message: str, logs: dict | None = None,
                      kind: str = "stage") -> Path:
    """A run that stopped in `stage`: its cell and the one error testcase orch-STAGE."""
    s = Suite(c.arch, f"orch-{stage}")
    s.cases = [ktap.TestResult(stage, "error", message=message, kind=kind)]
    rec = Record(command="orch run", cells=[c],
                 tests=testrun.record_cases(c.id, s, "", logs or {}))
    results.write(d / "results.json", rec)
    return d
