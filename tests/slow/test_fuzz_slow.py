"""orch fuzz on real kernels, kept short: the seed's pgoff=0 experiment on top of the move
series against the series alone (both 6.1, x86_64: kernels the bisect and run tests build
too, so store hits here). Every mapping next to another one merges on the series and stays
apart with pgoff=0, so a few programs diverge; the divergence is shrunk, and its reproducer
is built and run on both kernels: exit 1 where pgoff=0, exit 0 on the series alone; its
program runs on bare 6.1 too, which says the difference is the series'."""

import json

import pytest

from orchestrator.base.paths import PROJECT as ROOT
from orchestrator.results import record as results
from tests.support.orch import orch

pytestmark = pytest.mark.slow


def test_pgoff_zero_against_the_series_diverges_in_vma_layout_and_reproduces(tmp_path):
    out = tmp_path / "fuzz"
    r = orch("fuzz", "--arch", "x86_64", "--series",
             str(ROOT / "patches" / "uffd-move+anon-pgoff-zero"), "--against", "linux-6.1",
             "--against-series", str(ROOT / "patches" / "uffd-move"), "--programs", "48",
             "--seed", "1", "--shrink-time", "90", "--concurrent-share", "0", "-o", str(out),
             timeout=2400)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    rec = results.load(out / "results.json")
    cases = {t.name: t for t in rec.tests}
    assert cases["programs"].status == "pass" and "48 programs" in cases["programs"].message
    maps = [t for t in rec.tests if t.name.startswith("maps after ")]
    assert maps and all(t.status == "fail" for t in maps), sorted(cases)
    data = json.loads((out / "fuzz.json").read_text())["arches"]["x86_64"]
    sig = next(s for s in data["signatures"] if s["signature"] == maps[0].name)
    assert sig["reproducer"]["verified"] is True, sig["reproducer"]
    assert sig["reproducer"]["exit_prototype"] == 1 and sig["reproducer"]["exit_reference"] == 0
    assert sig["shrink"]["ops_after"] <= 4 < sig["shrink"]["ops_before"] or \
        sig["shrink"]["ops_before"] <= 4, sig["shrink"]
    assert (out / sig["reproducer"]["path"]).is_file()
    # Each signature's program ran on bare 6.1 too (the prototype's tree without its
    # series), which merges as the series alone does: pgoff=0 is the series' difference.
    plain = [s for s in data["signatures"] if s["signature"].startswith("maps after ")
             and "\nmove " not in (s["minimized"] or s["program"])]
    assert plain and all(s["attribution"]["to"] == "series" for s in plain), \
        [(s["signature"], s["attribution"]) for s in plain]


def test_coverage_guided_fuzzing_keeps_programs_that_reach_new_lines(coverage_run, tmp_path):
    """`orch fuzz --coverage`: the prototype is the coverage kernel of `coverage_run` (from
    the store), its gcov counters come back after every batch, the programs that ran new
    lines of the series are kept, and the fuzzing's coverage of the series is reported
    beside the suite's (coverage_run's own), in fuzz.json, results.json, coverage.xml and
    summary.md."""
    out = tmp_path / "fuzz"
    r = orch("fuzz", "--coverage", "--arch", "x86_64", "--programs", "48", "--seed", "3",
             "--shrink-time", "0", "--no-base-check", "--suite-coverage", str(coverage_run),
             "-o", str(out), timeout=2400)
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-3000:]
    assert "up to date, no compile" in r.stderr  # coverage_run's kernel
    cov = json.loads((out / "fuzz.json").read_text())["arches"]["x86_64"]["coverage"]
    assert cov["supported"] is True and cov["why"] == "", cov
    assert cov["kept"] > 0 and cov["collections"] >= 3 and cov["reruns"] > 0, cov
    sec = results.load(out / "results.json").coverage
    # results.json's coverage is the fuzzing's alone (the suite is beside it in summary.md)
    fuzz_cell, = sec["cells"]
    assert fuzz_cell.startswith("x86_64.") and "+fuzz." in fuzz_cell, fuzz_cell
    lines = [ln for p in sec["patches"] for ln in p["lines"] if ln["status"] != "not_executable"]
    by_fuzz = [ln for ln in lines if ln["cells"].get(fuzz_cell, {}).get("count", 0) > 0]
    # 48 programs reach a part of the series' lines (69 of 319 here with seed 3), each
    # credited to a program (its stream index), the batch, or what ran before fuzzing
    assert len(by_fuzz) > len(lines) // 10, (len(by_fuzz), len(lines))
    assert any(ln["cells"][fuzz_cell]["ran_by"][0].isdigit() for ln in by_fuzz)
    assert (out / "coverage.xml").is_file()
    summary = (out / "summary.md").read_text()
    assert "the series' lines the fuzzing reached" in summary
    assert "| fuzzing only | neither |" in summary
    # the last "all" row: the fuzzing's table (results' own patch coverage table is first)
    total = [ln for ln in summary.splitlines() if ln.startswith("| | **all** |")][-1]
    suite_ran = int(total.split("|")[5].split()[0])  # coverage_run's lines, beside
    assert suite_ran > len(by_fuzz) > 0, total
