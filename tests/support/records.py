"""Synthetic orch output directories, written with orch's own record API (results.write),
for the merge, compare and golden-file tests: `write_run(dir, [(cell, {binary: {case:
status}})])` writes results.json and the KTAP logs it names."""

import json
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


PATCH1 = "0001-mm-userfaultfd-add-UFFDIO_MOVE.patch"
PATCH2 = "0002-mm-userfaultfd-move-the-swap-cache.patch"


def coverage(cells: list[Cell]) -> dict:
    """A coverage section in the documented shape (results.json schema version 2) over
    `cells`: patch 1 has a line run everywhere (by uffd_move), one run nowhere and one not
    executable; patch 2's line runs on the first cell only (by two binaries)."""
    ids = [c.id for c in cells]
    ran = {cid: {"count": 7, "ran_by": ["uffd_move"]} for cid in ids}
    never = {cid: {"count": 0, "ran_by": []} for cid in ids}
    first = {cid: ({"count": 2, "ran_by": ["vma_merge", "uffd_move"]} if i == 0 else
                   {"count": 0, "ran_by": []}) for i, cid in enumerate(ids)}
    return {
        "tool": "gcov", "profiled": ["mm/userfaultfd.c"],
        "cells": {cid: {"executable": 3, "run": 2 if i == 0 else 1, "supported": True,
                        "why": ""} for i, cid in enumerate(ids)},
        "patches": [
            {"index": 1, "name": PATCH1, "subject": "mm/userfaultfd: add UFFDIO_MOVE",
             "dirty": False, "executable": 2, "run": 1, "lines": [
                 {"file": "mm/userfaultfd.c", "line": 1500, "function": "move_pages",
                  "text": "\tif (!mmget_not_zero(mm))", "status": "run", "cells": ran},
                 {"file": "mm/userfaultfd.c", "line": 1585, "function": "move_pages",
                  "text": "\t\terr = -EBUSY; /* <b>not</b> & */", "status": "not_run",
                  "cells": never},
                 {"file": "mm/userfaultfd.c", "line": 1590, "function": "move_pages",
                  "text": "}", "status": "not_executable", "cells": {}}]},
            {"index": 2, "name": PATCH2, "subject": "mm/userfaultfd: move the swap cache",
             "dirty": False, "executable": 1, "run": 1, "lines": [
                 {"file": "mm/userfaultfd.c", "line": 1700, "function": "move_swap_pte",
                  "text": "\tfolio_move_anon_rmap(folio, dst_vma);", "status": "run",
                  "cells": first}]},
        ],
    }


def add_coverage(d: Path, section: dict) -> Path:
    """Put a coverage section into d/results.json as the file has it (the record's own
    writer gets the section from the coverage work)."""
    path = d / "results.json"
    data = json.loads(path.read_text())
    data["coverage"] = section
    path.write_text(json.dumps(data, indent=2))
    return d
