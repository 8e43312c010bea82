"""Coverage guidance (`orch fuzz --coverage`): the prototype is a coverage build (the same
kernel as `orch run --coverage`'s, from the store), and after each batch its gcov counters
come back (testing/gcovdata.py) and become the series' added lines the batch ran
(kernel/gcov.py, run/coverage.py's series lines). A batch that ran lines no earlier program
ran is split in halves, run again on the prototype alone, until each new line is credited
to one program: that program is kept (engine.Hooks), and the stream mutates kept programs
from then on (strategies.Corpus).

The counters are reset before each batch, so what a batch ran is its own; the reruns that
confirm a signature (engine.confirm) run between, and count as the batch's. A reboot (a
crash) loses what the counters held: that batch's lines may be credited later. A line a
batch ran and no rerun of its programs ran again (khugepaged, timing) is the batch's: it
counts as reached, with no program kept for it.

`report()` is the fuzz run's coverage of the series in results.json's coverage schema
(results/coverage.py): one cell, the fuzz run, whose `ran_by` is the first program that
ran each line; `--suite-coverage DIR` puts a run's own cells (`orch run --coverage`) beside
it in summary.md's table (not in results.json: its coverage is the fuzzing's alone), which
says which lines the fuzzing reached that the suite did not.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from orchestrator.base.errors import InfraError, OrchError
from orchestrator.fuzz.machines import Side
from orchestrator.fuzz.model import Program
from orchestrator.kernel import gcov
from orchestrator.results import coverage as rescov
from orchestrator.run import coverage as runcov
from orchestrator.testing import gcovdata

BATCH = "(batch)"  # ran by a batch, no single program of it ran it again
SETUP = "(setup)"
# A batch with more new lines than this credits them by running its programs one by one
# (most of them ran some); otherwise by halving (a few programs did).
SINGLES_ABOVE = 8  # ran before the first program: the boot, the executor's setup, probes


@dataclass
class CoverageGuide:
    """The hook: `start(side)` once the prototype is up, `after_batch` per batch."""

    work: Path  # scratch: the gcov tree, the tars
    timeout: float  # per program
    say: Callable[[str], None]
    supported: bool = False
    why: str = ""
    profiled: list[str] = field(default_factory=list)
    patches: list[dict] = field(default_factory=list)  # run/coverage.series_lines
    wanted: set[tuple[str, int]] = field(default_factory=set)
    functions: dict[tuple[str, int], str] = field(default_factory=dict)
    executable: set[tuple[str, int]] = field(default_factory=set)
    reached: dict[tuple[str, int], str] = field(default_factory=dict)  # line -> who first
    kept: int = 0
    collects: int = 0
    reruns: int = 0  # programs run again to credit new lines
    seconds: float = 0.0  # spent collecting, counting and rerunning
    _side: Side | None = None
    _tool: str = ""
    _boots: int = 0

    def start(self, a: Side) -> None:
        """Prepare the prototype's counters; take what ran before fuzzing as SETUP's. Not
        supported (said, and fuzzing goes on unguided) when its kernel has no gcov data."""
        t0 = time.monotonic()
        self._side, st = a, a.st
        run = a.run.state
        assert st.kernel is not None and st.machine is not None
        why = gcovdata.prepare(st.machine.session)
        if why:
            self.why = why
            self.say(f"orch: [{st.arch.name}] fuzz --coverage: {why}: fuzzing unguided")
            return
        self.patches = runcov.series_lines(run)
        self.wanted = {(ln["file"], ln["line"]) for p in self.patches for ln in p["lines"]}
        self.profiled, self._tool = runcov.stage(run, st, self.work / "tree")
        self._boots = a.boots
        if not self.wanted:
            self.why = "the series adds no lines to the profiled files: nothing to guide by"
            self.say(f"orch: [{st.arch.name}] fuzz --coverage: {self.why}")
            return
        self._credit(self._take(), SETUP)
        self.supported = True  # only once counters came back and counted
        self.seconds += time.monotonic() - t0
        self.say(f"[{st.arch.name}] fuzz --coverage: {len(self.executable)} executable "
                 f"lines added by the series, {len(self.reached)} run before fuzzing")

    def _take(self) -> set[tuple[str, int]]:
        """The series' lines run since the last reset, then reset."""
        a = self._side
        assert a is not None and a.st.machine is not None
        sess = a.st.machine.session
        if a.boots != self._boots:  # booted again: debugfs afresh
            self._boots = a.boots
            why = gcovdata.prepare(sess)
            if why:
                raise InfraError(f"after a reboot: {why}", stage="coverage")
        tar = gcovdata.collect(sess, self.work / "gcda.tar")
        self.collects += 1
        counts = gcov.line_counts(self.work / "tree", gcovdata.members(tar, self.profiled),
                                  self._tool, a.run.state.runner,
                                  log=self.work / "gcovr.log")
        if not gcovdata.reset(sess):  # the next counts would hold these too, misplaced
            raise InfraError("the gcov counters could not be reset", stage="coverage")
        ran = set()
        for f, ls in counts.items():
            for n, (count, function) in ls.items():
                if (f, n) in self.wanted:
                    self.executable.add((f, n))
                    self.functions.setdefault((f, n), function)
                    if count > 0:
                        ran.add((f, n))
        return ran

    def _credit(self, lines: set[tuple[str, int]], who: str) -> None:
        for ln in lines:
            self.reached.setdefault(ln, who)

    def _rerun(self, progs: list[tuple[str, Program]]) -> set[tuple[str, int]]:
        assert self._side is not None
        self._side.run_batch([(f"c{pid}", p) for pid, p in progs], self.timeout)
        self.reruns += len(progs)
        return self._take()

    def _each(self, progs: list[tuple[str, Program]], need: set[tuple[str, int]]) -> \
            dict[str, set[tuple[str, int]]]:
        """Each program alone, in order, until every line of `need` is credited."""
        out: dict[str, set[tuple[str, int]]] = {}
        for pid, p in progs:
            if not need:
                break
            mine = need & self._rerun([(pid, p)])
            if mine:
                out[pid] = mine
                need = need - mine
        return out

    def _split(self, progs: list[tuple[str, Program]], need: set[tuple[str, int]],
               ran_alone: bool = False) -> dict[str, set[tuple[str, int]]]:
        """Which programs ran `need` (lines the whole of `progs` ran): halves run again on
        the prototype; the second half is searched for what the first did not run, and a
        program is credited only with what it ran alone."""
        if len(progs) == 1:
            if not ran_alone:
                need = need & self._rerun(progs)
            return {progs[0][0]: need} if need else {}
        first, second = progs[:len(progs) // 2], progs[len(progs) // 2:]
        got = self._rerun(first)
        out: dict[str, set[tuple[str, int]]] = {}
        if need & got:
            out |= self._split(first, need & got, ran_alone=len(first) == 1)
        if need - got:
            out |= self._split(second, need - got)
        return out

    def after_batch(self, a: Side, b: Side, progs: list[tuple[str, Program]]) -> \
            dict[str, bool]:
        if not self.supported or a is not self._side:
            return {}
        t0 = time.monotonic()
        try:
            ran = self._take()
            new = {ln for ln in ran if ln not in self.reached}
            if not new:
                return {}
            # many new lines (early in a run): most programs have some, and running each
            # alone costs less than halving; few: halving finds their programs sooner
            credited = self._each(progs, new) if len(new) > SINGLES_ABOVE else \
                self._split(progs, new, ran_alone=True)
            # what a program ran again: its own; the rest stays the batch's
            kept = {}
            for pid, _ in progs:
                mine = credited.get(pid, set()) & new
                if mine:
                    self._credit(mine, pid)
                    kept[pid] = True
            self._credit(new, BATCH)
            self.kept += len(kept)
            self.say(f"[{a.st.arch.name}] fuzz --coverage: {len(new)} new line(s) of the "
                     f"series, {len(kept)} program(s) kept; {len(self.reached)}/"
                     f"{len(self.executable)} reached")
            return kept
        except OrchError as exc:  # guidance is lost, not the run: go on unguided
            self.supported = False
            self.why = f"stopped after {self.collects} collections: {exc}"
            self.say(f"orch: [{a.st.arch.name}] fuzz --coverage: {self.why}")
            return {}
        finally:
            self.seconds += time.monotonic() - t0

    # --- the report ------------------------------------------------------------------------

    def cell_counts(self) -> dict:
        """This run as one cell of results/coverage.section."""
        lines = {ln: {"count": 1 if ln in self.reached else 0,
                      "ran_by": [self.reached[ln]] if ln in self.reached else [],
                      "function": self.functions.get(ln, "")} for ln in self.executable}
        return {"supported": self.supported or bool(self.executable), "why": self.why,
                "profiled": self.profiled, "lines": lines}

    def report(self, cell: str, suite: dict | None = None) -> dict:
        """fuzz.json's coverage of one arch: the section (the fuzz run's cell `cell`, and
        the suite's cells of this arch when `suite` is a run's coverage section), how the
        lines were reached, and what guidance cost."""
        sec = rescov.section(self.patches, {cell: self.cell_counts()}) \
            if self.patches and self.executable else None
        both = beside(copy.deepcopy(sec), suite, cell.split(".")[0]) if sec and suite else None
        return {"cell": cell, "supported": self.supported, "why": self.why, "section": sec,
                "beside": both,
                "kept": self.kept, "collections": self.collects, "reruns": self.reruns,
                "seconds": round(self.seconds, 1),
                "before_fuzzing": sum(1 for w in self.reached.values() if w == SETUP)}


def beside(sec: dict, suite: dict, arch: str) -> dict:
    """`sec` with the cells of `suite` (a results.json coverage section) of `arch` added to
    its lines, matched by file, line and text (the same tree: the same lines)."""
    theirs = {cid: c for cid, c in suite.get("cells", {}).items()
              if cid.split(".")[0] == arch}
    by_key = {(ln["file"], ln["line"], ln["text"]): ln for p in suite.get("patches", [])
              for ln in p["lines"]}
    for p in sec["patches"]:
        for ln in p["lines"]:
            other = by_key.get((ln["file"], ln["line"], ln["text"]))
            for cid in theirs:
                if other and cid in other.get("cells", {}):
                    ln["cells"][cid] = dict(other["cells"][cid])
            ln["status"] = rescov.status(ln["cells"])
    sec["cells"].update({cid: {k: c[k] for k in ("supported", "why", "profiled") if k in c}
                         for cid, c in theirs.items()})
    return rescov.totals(sec)


def table_md(cov: dict) -> list[str]:
    """summary.md's lines: per patch, executable lines, those the fuzzing reached, the
    suite's (when beside it), those only the fuzzing reached, and the lines nobody ran."""
    sec = cov.get("beside") or cov.get("section")
    if not sec:
        return [f"Coverage: not measured ({cov.get('why') or 'no gcov data came back'})."]
    fuzz = cov["cell"]
    suite = [c for c in sec["cells"] if c != fuzz]

    def ran(ln: dict, cid: str) -> bool:
        return ln["cells"].get(cid, {}).get("count", 0) > 0

    head = "| # | patch | executable | fuzzing reached | " + \
        ("suite ran | fuzzing only | neither |" if suite else "")
    out = [head, "|---|---|---|---|" + ("---|---|---|" if suite else "")]
    tot = [0, 0, 0, 0, 0]
    for p in sec["patches"]:
        ex = [ln for ln in p["lines"] if ln["status"] != rescov.NOT_EXECUTABLE]
        f = sum(ran(ln, fuzz) for ln in ex)
        s = sum(any(ran(ln, c) for c in suite) for ln in ex)
        only = sum(ran(ln, fuzz) and not any(ran(ln, c) for c in suite) for ln in ex)
        neither = sum(ln["status"] == rescov.NOT_RUN for ln in ex)
        for i, v in enumerate((len(ex), f, s, only, neither)):
            tot[i] += v
        out.append(f"| {p['index']} | {p['name']} | {len(ex)} | {f} "
                   f"({rescov.pct(f, len(ex))}) |"
                   + (f" {s} ({rescov.pct(s, len(ex))}) | {only} | {neither} |" if suite
                      else ""))
    out.append(f"| | **all** | {tot[0]} | {tot[1]} ({rescov.pct(tot[1], tot[0])}) |"
               + (f" {tot[2]} ({rescov.pct(tot[2], tot[0])}) | {tot[3]} | {tot[4]} |"
                  if suite else ""))
    out += ([f"\nGuidance: {cov['why']}"] if cov.get("why") else [])
    out += ["", f"{cov['kept']} programs kept for reaching new lines; guidance took "
            f"{cov['seconds']}s ({cov['collections']} collections of the counters, "
            f"{cov['reruns']} programs run again to credit lines)."]
    return out
