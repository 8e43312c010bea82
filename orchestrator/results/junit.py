"""Results out: JUnit XML (junitparser, rendered from the results record) and JSON files,
replaced atomically so a reader never sees half a file, and written again as the run goes on.
"""

from __future__ import annotations

from pathlib import Path

from junitparser import Attr, Error, Failure, JUnitXml, Properties, Skipped, TestCase, TestSuite

from orchestrator.base import files
from orchestrator.results import coverage as rescov
from orchestrator.results.record import Cell, Record
from orchestrator.results.record import TestCase as ResultCase


def _clean(text: str) -> str:
    # XML 1.0 cannot carry most control characters (a test may print anything).
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


class _Case(TestCase):
    file = Attr()  # GitLab shows it; junitparser has no attribute for it


def cell_properties(cell: Cell) -> dict[str, str]:
    return {
        "cell": cell.id,
        "arch": cell.arch,
        "kernel_release": cell.kernel_release,
        "accelerator": cell.accelerator,
        "tree": cell.tree_spec or cell.tree,
        "base_commit": cell.base_commit,
        "head_commit": cell.head_commit,
        "series": cell.series_spec or cell.series,
        "series_hash": cell.series_hash,
        **({"dirty_hash": cell.dirty_hash} if cell.dirty_hash else {}),
        "series_patches": str(cell.series_patches),
        "profile": cell.profile,
        # where the run happened: qemu, or ssh://HOST[:PORT] and how the kernel got there
        "target": cell.target if cell.target_kind == cell.target else
        f"{cell.target_kind}://{cell.target}",
        **({"deploy": cell.deploy} if cell.deploy else {}),
        "kernel_key": cell.kernel_key,
    }


def coverage_properties(record: Record, cell: Cell) -> dict[str, str]:
    """Patch coverage (orch run --coverage): the cell's added lines run, in all and per
    patch (`coverage.PATCH`: run/executable)."""
    cov = rescov.cell_summary(record.coverage, cell.id)
    if cov is None:
        return {}
    if not cov["supported"]:
        return {"coverage": f"not supported: {cov['why']}"}
    props = {"coverage": f"{cov['run']}/{cov['executable']} added lines run "
                         f"({rescov.pct(cov['run'], cov['executable'])})",
             "coverage_lines_executable": str(cov["executable"]),
             "coverage_lines_run": str(cov["run"])}
    for p in cov["patches"]:
        props[f"coverage.{p['name']}"] = f"{p['run']}/{p['executable']}"
    return props


def junit(record: Record) -> JUnitXml:
    """One testsuite per cell and binary, named like its testcases' classname
    (CELL_ID.BINARY, unique across cells); rendered from the record alone."""
    xml = JUnitXml(name="orch")
    for cell in record.cells:
        for binary in record.binaries(cell.id):
            cases = [t for t in record.tests if t.cell == cell.id and t.binary == binary]
            ts = TestSuite(f"{cell.id}.{binary}")
            ts.properties = Properties()
            props = {**cell_properties(cell), "binary": binary,
                     **coverage_properties(record, cell)}
            for k, v in props.items():
                ts.add_property(k, _clean(str(v)))
            for t in cases:
                ts.add_testcase(_testcase(t))
            xml.add_testsuite(ts)
    xml.update_statistics()
    return xml


def _testcase(t: ResultCase) -> _Case:
    tc = _Case(t.name, classname=t.classname, time=t.duration or 0.0)
    if t.file:
        tc.file = t.file
    if t.status == "fail":
        tc.result = [Failure(_clean(t.message) or "failed")]
    elif t.status == "skip":
        tc.result = [Skipped(_clean(t.message) or "skipped")]
    elif t.status == "error":
        tc.result = [Error(_clean(t.message) or "error")]
    # The record keeps the tail of the case's own output (results.OUTPUT_CAP); the full
    # logs stay files in the output directory, named here.
    out = _clean(t.output)
    if t.logs:
        logs = "logs: " + "  ".join(f"{k}={v}" for k, v in t.logs.items())
        out = f"{out}\n{logs}" if out else logs
    if out:
        tc.system_out = out
    return tc


def write_junit(path: Path, record: Record) -> None:
    xml = junit(record)
    with files.atomic(path) as tmp:
        xml.write(str(tmp), pretty=True)
