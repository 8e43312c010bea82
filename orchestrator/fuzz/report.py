"""What a fuzz run writes, as data first: results.json (results/record.py: one cell per arch,
the prototype's; one testcase per divergence signature, a failure carrying the minimized
program and its reproducer; one `programs` testcase with the counts), the JUnit and
summary.md rendered from it as for any run (so `orch merge` and `orch compare` read fuzz
runs too), and fuzz.json with what results.json has no place for (the reference side, every
program id of a signature, the shrink costs, throughput).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator import __version__
from orchestrator.base import files
from orchestrator.base.errors import EXIT_INFRA, EXIT_PASS, EXIT_TEST_FAILED, worst
from orchestrator.fuzz import diff
from orchestrator.fuzz.engine import ArchRun, Group
from orchestrator.fuzz.guide import CoverageGuide, table_md
from orchestrator.results import coverage as rescov
from orchestrator.results import merge as mergemod
from orchestrator.results import record as results
from orchestrator.results.record import Cell, Record, TestCase

BINARY = "fuzz"


@dataclass
class ArchReport:
    """One arch's fuzzing: the run, both sides' cells (None: a side never came up)."""

    arch: str
    run: ArchRun
    prototype: Cell | None = None
    reference: Cell | None = None
    sides: dict = field(default_factory=dict)  # name -> {boots, crashes, hangs, seconds}
    guide: CoverageGuide | None = None  # --coverage
    suite: dict | None = None  # --suite-coverage: that run's coverage section
    coverage: dict | None = None  # guide.report(), filled in by record()

    @property
    def exit_code(self) -> int:
        if self.run.error:
            return EXIT_INFRA
        # a divergence its program's rerun did not show again, or one the base kernel
        # shows too, is recorded, not a failure
        real = [g for g in self.run.groups.values() if g.counts]
        return EXIT_TEST_FAILED if real else EXIT_PASS


def group_case(cell: str, g: Group, out: Path) -> TestCase:
    program = g.minimized or g.program
    v = g.min_verdict or g.verdict
    lines = [f"signature: {g.signature}", f"programs: {len(g.pids)} (first: {g.pids[0]}, "
             f"stream index {g.index}, after {g.found_after}s)",
             f"reproduced: {'-' if g.reproduced is None else str(g.reproduced).lower()}"]
    if g.shrink:
        lines.append("shrink: " + ", ".join(f"{k}={x}" for k, x in g.shrink.items()))
    if g.repro:
        lines.append("reproducer: " + ", ".join(f"{k}={x}" for k, x in g.repro.items()))
    if g.attribution:
        lines.append(f"attribution: {g.attribution['to']}: {g.attribution['why']}")
    lines += ["", "differences (prototype / reference):"]
    lines += [f"  {d.key}: {d.prototype} / {d.reference}" for d in v.differences[:20]]
    lines += ["", "minimized program:" if g.minimized else "program:", program.text(g.pids[0])]
    logs = {k: x for k, x in (("reproducer", g.repro.get("path", "")),
                              ("program", g.repro.get("program", ""))) if x}
    status, lead = g.status
    return TestCase(cell=cell, binary=BINARY, name=g.signature, status=status,
                    kind="divergence", message=lead + diff.message(v, program), duration=None,
                    file=g.repro.get("path", ""), logs=logs,
                    output=results.cap("\n".join(lines)))


def record(reports: list[ArchReport], command: str, created: str, out: Path) -> Record:
    rec = Record(kind="run", orch_version=__version__, command=command, created=created)
    for r in reports:
        cell = r.prototype or Cell(arch=r.arch, tree="?")
        # A fuzz run of a cell is a cell of its own: it merges beside the cell's orch run.
        if not cell.profile.endswith("+fuzz"):
            cell.profile = f"{cell.profile}+fuzz"
        cell.exit_code = r.exit_code
        cell.status = results.status_of(r.exit_code)
        cell.error = r.run.error
        rec.cells.append(cell)
        ar = r.run
        if ar.error:
            rec.tests.append(TestCase(cell=cell.id, binary="orch-fuzz", name="fuzz",
                                      status="error", kind="stage", message=ar.error))
        rate = f"{ar.rate():.2f}" if ar.seconds else "0"
        rec.tests.append(TestCase(
            cell=cell.id, binary=BINARY, name="programs",
            status="pass" if ar.programs else "error", kind="fuzz",
            message=f"{ar.programs} programs in {ar.seconds:.0f}s ({rate}/s) against "
                    f"{r.reference.id if r.reference else '?'}: {ar.agreed} agreed, "
                    f"{ar.diverged} diverged "
                    f"({len(ar.groups)} signatures), {ar.not_comparable} not comparable",
            duration=round(ar.seconds, 1), duration_source="orch"))
        for g in ar.groups.values():
            rec.tests.append(group_case(cell.id, g, out))
        if r.guide is not None:
            r.coverage = r.guide.report(cell.id, r.suite)
    # the series' lines the fuzzing reached (and the suite's beside them): results.json's
    # coverage section, so coverage.xml, the page and orch merge/compare show it as a run's
    rec.coverage = rescov.union([r.coverage["section"] for r in reports
                                 if r.coverage and r.coverage.get("section")])
    return rec


def fuzz_json(reports: list[ArchReport], config: dict) -> dict:
    arches = {}
    for r in reports:
        ar = r.run
        arches[r.arch] = {
            "prototype": r.prototype.id if r.prototype else None,
            "reference": r.reference.id if r.reference else None,
            "prototype_kernel": r.prototype.kernel_key if r.prototype else None,
            "reference_kernel": r.reference.kernel_key if r.reference else None,
            "seed": ar.seed, "programs": ar.programs, "generated": ar.generated,
            "seconds": round(ar.seconds, 1), "programs_per_second": round(ar.rate(), 3),
            "batches": ar.batches, "agreed": ar.agreed, "diverged": ar.diverged,
            "not_comparable": ar.not_comparable,
            "not_comparable_why": dict(ar.unusable.most_common(20)),
            "both": dict(ar.both), "allowed": dict(ar.allowed), "kept": ar.kept,
            "reruns": ar.reruns, "features": ar.features, "wp_generated": ar.wp,
            "layouts": {**ar.layouts, "extra_vmas": {str(k): n for k, n in
                                                     sorted(ar.layouts["extra_vmas"].items())}},
            "sides": r.sides, "error": ar.error,
            "coverage": {k: v for k, v in r.coverage.items() if k not in ("section", "beside")}
            if r.coverage else None,
            "signatures": [{
                "signature": g.signature, "programs": g.pids, "first_index": g.index,
                "found_after_seconds": g.found_after,
                "differences": [d.__dict__ for d in g.verdict.differences[:50]],
                "program": g.program.text(g.pids[0]),
                "minimized": g.minimized.text("min") if g.minimized else None,
                "min_differences": [d.__dict__ for d in g.min_verdict.differences[:50]]
                if g.min_verdict else None,
                "reproduced": g.reproduced, "shrink": g.shrink, "reproducer": g.repro,
                "attribution": g.attribution,
            } for g in ar.groups.values()],
        }
    return {"schema": "orch-fuzz", "schema_version": 1, "config": config, "arches": arches}


def summary_md(rec: Record, reports: list[ArchReport]) -> str:
    lines = [mergemod.summary_md(rec, title="orch fuzz").rstrip(), "",
             "| arch | programs | programs/s | agreed | diverged | signatures | crashes "
             "(prototype / reference) | allowlisted records |",
             "|---|---|---|---|---|---|---|---|"]
    for r in reports:
        ar = r.run
        crashes = " / ".join(str(r.sides.get(s, {}).get("crashes", 0))
                             for s in ("prototype", "reference"))
        lines.append(f"| {r.arch} | {ar.programs} | {ar.rate():.2f} | {ar.agreed} | "
                     f"{ar.diverged} | {len(ar.groups)} | "
                     f"{crashes} | {sum(ar.allowed.values())} |")
    for r in reports:
        if not r.run.wp:
            lines.append(f"- {r.arch}: programs drawn without uffd write-protect (measured: "
                         + ", ".join(f"{k} {'has' if v else 'has none'}" for k, v in
                                     r.run.features.get("uffd_wp", {}).items()) + ")")
        for g in r.run.groups.values():
            ops = (g.minimized or g.program).size()[0]
            lines.append(f"- {r.arch}: **{mergemod.md_cell(g.signature)}**: {len(g.pids)} "
                         f"program(s), reproducer `{g.repro.get('path', '-')}` ({ops} ops)"
                         + (f", {g.status[1].rstrip(': ')} (not a failure)"
                            if g.status[0] == "skip" else "")
                         + (f"; attribution: {g.attribution['to']}"
                            if g.attribution and g.counts else ""))
    for r in reports:
        if r.coverage:
            lines += ["", f"### {r.arch}: the series' lines the fuzzing reached "
                      f"(`--coverage`)", "", *table_md(r.coverage)]
    return "\n".join(lines) + "\n"


def write(out: Path, reports: list[ArchReport], config: dict, command: str,
          started: dt.datetime) -> int:
    rec = record(reports, command, started.isoformat(), out)
    mergemod.write(rec, out)
    files.write_text(out / "summary.md", summary_md(rec, reports))
    files.write_json(out / "fuzz.json", fuzz_json(reports, config))
    return worst(*[r.exit_code for r in reports]) if reports else EXIT_INFRA
