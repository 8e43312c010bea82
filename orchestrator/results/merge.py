"""`orch merge DIR... -o OUT`: many runs (CI matrix artifacts, local runs) into one record.

Writes OUT/results.json, OUT/junit.xml (rendered from the merged record), OUT/summary.md
(a cells x binaries table for a merge-request note or $GITHUB_STEP_SUMMARY) and the results
page OUT/report.html (page.py). Log paths are
rewritten relative to OUT; the logs themselves stay where they are.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from orchestrator import __version__
from orchestrator.base import files
from orchestrator.base.errors import EXIT_INFRA, UsageError, worst
from orchestrator.results import coverage as rescov
from orchestrator.results import kcidb as kcidbmod
from orchestrator.results import page
from orchestrator.results import record as results
from orchestrator.results.junit import write_junit
from orchestrator.results.record import Record

SUMMARY_FAILURES_MAX = 50  # failing testcases listed under the table


def find_results(d: Path, exclude: Path | None = None) -> list[Path]:
    """d/results.json, or every results.json below d (CI artifacts arrive nested, e.g.
    artifacts/<cell>/results.json). A directory holding none is not an orch output."""
    if not d.is_dir():
        raise UsageError(f"{d}: not an orch output directory (no such directory)")
    if (d / results.FILENAME).is_file():
        return [d / results.FILENAME]
    found: list[Path] = []
    for root, dirs, names in os.walk(d):
        r = Path(root)
        if exclude is not None and (r == exclude or exclude in r.parents):
            dirs[:] = []
            continue
        if results.FILENAME in names:
            found.append(r / results.FILENAME)
            dirs[:] = []  # a run's own directory holds no other run
        dirs.sort()
    if not found:
        raise UsageError(f"{d}: not an orch output directory (no {results.FILENAME} in it "
                         f"or below)")
    return found


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


def merge(dirs: list[Path], out: Path, exclude_out: bool = True,
          coverage: bool = False) -> Record:
    """The merged record. The same cell in two inputs is an error naming both: merging it
    twice would count its tests twice, and dropping one would hide a result.

    Log paths are re-based on `out`, where the record is to be written. With `exclude_out`
    (orch merge) nothing under `out` is an input: `orch merge art -o art/merged` run twice
    must not read the first merge as a third input. A merge that is not written there
    (compare's view of a directory of runs, with `out` that directory) reads all of it.

    Patch coverage is the union of the inputs' (results/coverage.py); with `coverage`, an
    input without any is an error (`orch merge --coverage`)."""
    out = out.resolve()
    merged = Record(kind="merge", orch_version=__version__,
                    created=dt.datetime.now(dt.timezone.utc).isoformat())
    seen: dict[str, Path] = {}
    covs = []
    for d in dirs:
        for path in find_results(d.resolve(), exclude=out if exclude_out else None):
            rec = results.load(path)
            if coverage and not rec.coverage:
                raise UsageError(f"--coverage: {path} has no patch coverage (its run had no "
                                 f"--coverage)")
            covs.append(rec.coverage)
            src = path.parent
            for cell in rec.cells:
                if cell.id in seen:
                    raise UsageError(f"cell {cell.id} is in both {seen[cell.id]} and {path}; "
                                     f"merge each cell once")
                seen[cell.id] = path
                # a merged input's cells keep their own origin, re-based on OUT
                origin = (src / cell.source).resolve() if cell.source else src
                cell.source = _rel(origin, out)
                merged.cells.append(cell)
            for t in rec.tests:
                t.logs = {k: _rel(src / v, out) for k, v in t.logs.items()}
                merged.tests.append(t)
    merged.coverage = rescov.union(covs)
    return merged


def exit_code(rec: Record) -> int:
    """The worst cell, with orch run's meanings; a cell that never finished (its run was
    killed) counts as an infrastructure failure."""
    return worst(*[EXIT_INFRA if c.exit_code is None else c.exit_code
                           for c in rec.cells])


def md_cell(text: str) -> str:
    """Text fit for one Markdown table cell or list line."""
    return text.replace("|", "\\|").replace("\n", " ").strip()


ICON = {"passed": "✅", "failed": "❌", "error": "⚠️", "interrupted": "⏹", "running": "⏳"}


def summary_md(rec: Record, title: str = "orch results") -> str:
    """A cells x binaries table: passed/failed/skipped per binary with a link to its log,
    then the failing testcases (first failing line)."""
    code = exit_code(rec)
    binaries = [b for b in rec.binaries() if not b.startswith("orch-")]
    total = rec.counts()
    lines = [f"### {title}: {len(rec.cells)} cell(s), exit {code} "
             f"({results.status_of(code)})", "",
             f"{total['pass']} passed, {total['fail']} failed, {total['skip']} skipped, "
             f"{total['error']} errors", ""]
    lines.append("| cell | result | " + " | ".join(binaries) + " |")
    lines.append("|---|---|" + "---|" * len(binaries))
    for cell in rec.cells:
        status = cell.status if cell.exit_code is not None else "running"
        res = f"{ICON.get(status, '')} {status} (exit {cell.exit_code})"
        if cell.error:
            res += f": {md_cell(cell.error)[:200]}"
        row = [f"`{cell.id}`", res]
        for b in binaries:
            cases = [t for t in rec.tests if t.cell == cell.id and t.binary == b]
            if not cases:
                row.append("–")
                continue
            c = rec.counts(cell.id, b)
            text = f"{c['pass']} passed, {c['fail']} failed, {c['skip']} skipped"
            if c["error"]:
                text += f", {c['error']} errors"
            log = next((t.logs["output"] for t in cases if "output" in t.logs), "")
            row.append(f"{'❌ ' if c['fail'] or c['error'] else ''}[{text}]({log})" if log
                       else text)
        lines.append("| " + " | ".join(row) + " |")
    bad = [t for t in rec.tests if t.status in ("fail", "error")]
    if bad:
        lines += ["", "Failures and errors:", ""]
        for t in bad[:SUMMARY_FAILURES_MAX]:
            lines.append(f"- `{t.cell}` {t.binary} **{t.name}** ({t.status}, {t.kind}): "
                         f"{md_cell(t.message)[:300]}")
        if len(bad) > SUMMARY_FAILURES_MAX:
            lines.append(f"- ... and {len(bad) - SUMMARY_FAILURES_MAX} more (results.json)")
    return "\n".join(lines) + "\n" + rescov.summary_md(rec.coverage)


def write(rec: Record, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results.write(out / results.FILENAME, rec)
    write_junit(out / "junit.xml", rec)
    files.write_text(out / "summary.md", summary_md(rec))
    rescov.write_cobertura(out, rec.coverage)
    page.report(out, compare=False)


def run(dirs: list[Path], out: Path, command: str = "", kcidb: Path | None = None,
        coverage: bool = False) -> int:
    """The CLI's `orch merge`: prints the summary, exits with the worst cell's code."""
    try:
        rec = merge(dirs, out, coverage=coverage)
    except UsageError as exc:
        exc.stage = "merge"
        raise
    rec.command = command
    write(rec, out)
    if kcidb is not None:
        files.write_bytes(kcidb, kcidbmod.dumps(rec))
    code = exit_code(rec)
    print(summary_md(rec), end="")
    print(f"orch: merge: {len(rec.cells)} cell(s), {len(rec.tests)} testcases -> {out} "
          f"(exit {code})", file=sys.stderr)
    return code

