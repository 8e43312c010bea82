"""A fuzz run's outputs are a results record like any run's: one testcase per signature (a
failure with its program), JUnit and summary.md from it, and `orch compare` between two
fuzz runs; fuzz.json has the rest."""

import json

from orchestrator.fuzz import diff, report, trace
from orchestrator.fuzz.engine import ArchRun, Group
from orchestrator.fuzz.model import Op, Program
from orchestrator.results import compare
from orchestrator.results import record as results
from orchestrator.results.record import Cell

P = Program((Op("mmap", (0, 1, 0)), Op("move", (0, 0, 0, 0, 1, 0, 0))))


def arch_report(signatures, error=""):
    ar = ArchRun("x86_64", 5, programs=100, agreed=100 - len(signatures),
                 diverged=len(signatures), seconds=50.0)
    ar.error = error
    for s in signatures:
        v = diff.Verdict("3", signature=s, differences=[
            diff.Difference("o1", "op:move", "move -1 EBUSY", "move 0 ok")])
        ar.groups[s] = Group("x86_64", s, 3, P, v, (trace.Outcome("3"), trace.Outcome("3")),
                             4.2, ["3"])
    r = report.ArchReport("x86_64", ar, Cell("x86_64", "linux-6.1", series="uffd-move"),
                          Cell("x86_64", "linux-6.12"))
    return r


def test_one_testcase_per_signature_and_the_counts(tmp_path):
    code = report.write(tmp_path, [arch_report(["move: a", "pages after move: b"])],
                        {"seed": 5}, "orch fuzz", report_time())
    assert code == 1
    rec = results.load(tmp_path / "results.json")
    # not the cell's own orch run's id: the two merge side by side
    assert [c.id for c in rec.cells] == ["x86_64.linux-6.1.uffd-move.default+fuzz.qemu"]
    assert [(t.binary, t.name, t.status) for t in rec.tests] == [
        ("fuzz", "programs", "pass"), ("fuzz", "move: a", "fail"),
        ("fuzz", "pages after move: b", "fail")]
    assert "100 programs in 50s (2.00/s) against x86_64.linux-6.12.none.default.qemu" in \
        rec.tests[0].message
    assert "move 0 0 0 0 1 0 0" in rec.tests[1].output
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="move: a"' in junit and "<failure" in junit
    assert "| x86_64 | 100 | 2.00 | 98 | 2 | 2 |" in (tmp_path / "summary.md").read_text()
    data = json.loads((tmp_path / "fuzz.json").read_text())
    assert data["arches"]["x86_64"]["signatures"][0]["found_after_seconds"] == 4.2


def test_an_infrastructure_error_is_exit_3_not_a_divergence(tmp_path):
    assert report.write(tmp_path, [arch_report([], error="build: x")], {}, "orch fuzz",
                        report_time()) == 3
    rec = results.load(tmp_path / "results.json")
    assert ("orch-fuzz", "error") in [(t.binary, t.status) for t in rec.tests]
    assert report.write(tmp_path, [arch_report([])], {}, "orch fuzz", report_time()) == 0


def test_compare_between_two_fuzz_runs(tmp_path):
    report.write(tmp_path / "a", [arch_report(["move: a", "maps: c"])], {}, "", report_time())
    report.write(tmp_path / "b", [arch_report(["move: a", "pages: b"])], {}, "", report_time())
    pairs, changes = compare.compare(results.load(tmp_path / "a" / "results.json"),
                                     results.load(tmp_path / "b" / "results.json"))
    got = {(c.name, c.cls) for c in changes}
    assert got == {("programs", "unchanged"), ("move: a", "unchanged"), ("maps: c", "gone"),
                   ("pages: b", "new")}


def report_time():
    import datetime as dt
    return dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)


def test_a_divergence_not_reproduced_is_recorded_and_does_not_fail_the_run(tmp_path):
    r = arch_report(["move: a"])
    r.run.groups["move: a"].reproduced = False
    assert report.write(tmp_path, [r], {}, "orch fuzz", report_time()) == 0
    rec = results.load(tmp_path / "results.json")
    t = rec.tests[1]
    assert (t.name, t.status) == ("move: a", "skip") and t.message.startswith(
        "not reproduced: ")
    data = json.loads((tmp_path / "fuzz.json").read_text())
    assert data["arches"]["x86_64"]["signatures"][0]["reproduced"] is False
    r.run.groups["move: a"].reproduced = True
    assert report.write(tmp_path, [r], {}, "orch fuzz", report_time()) == 1
