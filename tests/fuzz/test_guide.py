"""Coverage guidance's logic with a fake prototype whose programs each "run" known lines:
a batch's new lines are credited to the programs that ran them by halving, those are kept,
and the report puts the fuzzing's coverage beside the suite's. The real thing (a coverage
kernel, gcov data from debugfs) is tests/slow/test_fuzz_slow.py's."""

from pathlib import Path
from types import SimpleNamespace

from orchestrator.base.errors import InfraError
from orchestrator.fuzz import guide
from orchestrator.fuzz.model import Op, Program
from orchestrator.results import coverage as rescov
from orchestrator.results import coverage_schema

A, B, C, D = ("mm/u.c", 10), ("mm/u.c", 11), ("mm/u.c", 12), ("mm/h.c", 5)


def prog(n):
    return Program((Op("mmap", (0, n, 0)),))


class FakeSide:
    """Runs programs by adding their lines to what the counters hold."""

    def __init__(self, lines_of):
        self.lines_of, self.held, self.batches = lines_of, set(), []
        self.st = SimpleNamespace(arch=SimpleNamespace(name="x86_64"))

    def run_batch(self, programs, timeout):
        self.batches.append([pid for pid, _ in programs])
        for _, p in programs:
            self.held |= self.lines_of.get(p.ops[0].args[1], set())


class FakeGuide(guide.CoverageGuide):
    def _take(self):
        got, self._side.held = self._side.held & self.wanted, set()
        self.executable |= self.wanted
        self.collects += 1
        return got


def make(lines_of):
    side = FakeSide(lines_of)
    g = FakeGuide(Path("/nonexistent"), 10, lambda m: None)
    g._side, g.supported = side, True
    g.wanted = {A, B, C, D}
    g.patches = [{"index": 1, "name": "0001-move.patch", "subject": "move", "dirty": False,
                  "lines": [{"file": f, "line": n, "text": f"x{n}"} for f, n in (A, B, C)]},
                 {"index": 2, "name": "0002-huge.patch", "subject": "huge", "dirty": False,
                  "lines": [{"file": D[0], "line": D[1], "text": "y"}]}]
    return side, g


def batch(side, programs):
    for _, p in programs:
        side.held |= side.lines_of.get(p.ops[0].args[1], set())


def test_new_lines_are_credited_to_the_programs_that_ran_them():
    side, g = make({3: {A}, 5: {B, C}})
    progs = [(str(i), prog(i)) for i in range(8)]
    batch(side, progs)
    kept = g.after_batch(side, None, progs)
    assert kept == {"3": True, "5": True}
    assert g.reached == {A: "3", B: "5", C: "5"} and g.kept == 2
    assert 0 < g.reruns < 8 * 2  # halving, not every program alone
    # the same lines again: nothing new, nothing rerun
    reruns = g.reruns
    batch(side, progs)
    assert g.after_batch(side, None, progs) == {} and g.reruns == reruns


def test_a_line_no_rerun_gives_back_is_the_batch_s():
    side, g = make({})
    progs = [(str(i), prog(i)) for i in range(4)]
    side.held = {D}  # khugepaged ran it during the batch, say
    assert g.after_batch(side, None, progs) == {}
    assert g.reached == {D: guide.BATCH} and g.kept == 0


def test_the_report_puts_the_fuzzing_beside_the_suite():
    side, g = make({1: {A, D}})
    progs = [("1", prog(1)), ("2", prog(2))]
    batch(side, progs)
    g.after_batch(side, None, progs)
    suite_lines = {A: {"count": 3, "ran_by": ["uffd_move"], "function": "f"},
                   B: {"count": 2, "ran_by": ["uffd_move"], "function": "f"},
                   C: {"count": 0, "ran_by": [], "function": "f"},
                   D: {"count": 0, "ran_by": [], "function": "h"}}
    suite = rescov.section(g.patches, {"x86_64.linux-6.1.s.coverage": {
        "supported": True, "why": "", "profiled": ["mm/u.c", "mm/h.c"],
        "lines": suite_lines}})
    cov = g.report("x86_64.linux-6.1.s.coverage+fuzz", suite)
    assert set(cov["section"]["cells"]) == {"x86_64.linux-6.1.s.coverage+fuzz"}
    sec = cov["beside"]
    assert set(sec["cells"]) == {"x86_64.linux-6.1.s.coverage+fuzz",
                                 "x86_64.linux-6.1.s.coverage"}
    status = {(ln["file"], ln["line"]): ln["status"] for p in sec["patches"]
              for ln in p["lines"]}
    assert status == {A: "run", B: "run", C: "not_run", D: "run"}
    md = "\n".join(guide.table_md(cov))
    assert "| 1 | 0001-move.patch | 3 | 1 (33.3%) | 2 (66.7%) | 0 | 1 |" in md, md
    assert "| 2 | 0002-huge.patch | 1 | 1 (100.0%) | 0 (0.0%) | 1 | 0 |" in md, md
    assert "| | **all** | 4 | 2 (50.0%) | 2 (50.0%) | 1 | 1 |" in md, md
    # the suite of another arch is not beside this one
    other = guide.beside(rescov.section(g.patches, {"x86_64.linux-6.1.s.coverage+fuzz":
                                                    g.cell_counts()}),
                         suite, "arm64")
    assert set(other["cells"]) == {"x86_64.linux-6.1.s.coverage+fuzz"}


def test_unsupported_guidance_keeps_nothing():
    side, g = make({1: {A}})
    g.supported = False
    batch(side, [("1", prog(1))])
    assert g.after_batch(side, None, [("1", prog(1))]) == {}


def test_counters_that_cannot_be_reset_stop_the_guidance_saying_why():
    side, g = make({1: {A}})

    class Stuck(FakeGuide):
        def _take(self):
            raise InfraError("the gcov counters could not be reset", stage="coverage")
    g.__class__ = Stuck
    batch(side, [("1", prog(1)), ("2", prog(2))])
    assert g.after_batch(side, None, [("1", prog(1)), ("2", prog(2))]) == {}
    assert not g.supported and "could not be reset" in g.why and g.kept == 0


def test_a_suite_section_without_optional_keys_gives_a_loadable_section():
    side, g = make({1: {A}})
    batch(side, [("1", prog(1))])
    g.after_batch(side, None, [("1", prog(1))])
    suite = rescov.section(g.patches, {"x86_64.a": {"lines": {}}})
    for c in suite["cells"].values():
        c.pop("why"), c.pop("profiled")
    cov = g.report("x86_64.b+fuzz", suite)
    assert coverage_schema.problem(cov["beside"]) is None
    assert coverage_schema.problem(cov["section"]) is None
