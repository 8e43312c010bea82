"""Patch coverage as data (results/coverage.py) and where it shows: results.json (schema
version 2), summary.md, Cobertura XML (checked against Cobertura's DTD), JUnit properties,
KCIDB misc (checked with kcidb-io's schema), orch merge's union and orch compare's lines
gained and lost."""

import json
from pathlib import Path

import pytest
from lxml import etree

from orchestrator.results import coverage as rescov
from orchestrator.results import kcidb
from orchestrator.results import record as results
from orchestrator.results.junit import junit
from tests.support.orch import orch
from tests.support.records import MOVE, cell, write_run

DTD = Path(__file__).parent / "data" / "coverage-04.dtd"
X86 = cell("x86_64").id
ARM = cell("arm64").id

PATCHES = [
    {"index": 1, "name": "0001-a.patch", "subject": "mm: a", "dirty": False, "lines": [
        {"file": "mm/x.c", "line": 10, "text": "\tif (busy)"},
        {"file": "mm/x.c", "line": 11, "text": "\t\treturn -EBUSY;"},
        {"file": "mm/x.c", "line": 12, "text": "\t/* a comment */"}]},
    {"index": 2, "name": "0002-b.patch", "subject": "mm: b", "dirty": False, "lines": [
        {"file": "include/linux/x.h", "line": 3, "text": "\treturn 2 * x;"},
        {"file": "arch/arm64/mm/y.c", "line": 7, "text": "\tflush();"}]},
    {"index": 3, "name": "dirty", "subject": "uncommitted", "dirty": True, "lines": [
        {"file": "mm/x.c", "line": 20, "text": "\tswap_cache_path();"}]},
]


def counts(n: int, *by: str, fn: str = "move") -> dict:
    return {"count": n, "ran_by": list(by), "function": fn}


def cell_data(lines: dict, profiled=("mm/x.c",)) -> dict:
    return {"supported": True, "why": "", "profiled": list(profiled), "lines": lines}


def x86_only() -> dict:
    return rescov.section(PATCHES, {X86: cell_data({
        ("mm/x.c", 10): counts(5, "uffd_move", "(boot)"), ("mm/x.c", 11): counts(0),
        ("include/linux/x.h", 3): counts(2, "uffd_move", fn="twice"),
        ("mm/x.c", 20): counts(0, fn="move_swap")})})


def arm_only() -> dict:
    return rescov.section(PATCHES, {ARM: cell_data({
        ("mm/x.c", 10): counts(3, "uffd_move"), ("mm/x.c", 11): counts(1, "uffd_move"),
        ("include/linux/x.h", 3): counts(0, fn="twice"),
        ("arch/arm64/mm/y.c", 7): counts(0, fn="flush_all"),
        ("mm/x.c", 20): counts(0, fn="move_swap")}, ["mm/x.c", "arch/arm64/mm/y.c"])})


def test_section_per_patch_lines_and_totals():
    sec = x86_only()
    p1, p2, dirty = sec["patches"]
    assert [ln["status"] for ln in p1["lines"]] == ["run", "not_run", "not_executable"]
    assert (p1["executable"], p1["run"]) == (2, 1)
    assert p1["lines"][0]["cells"] == {X86: {"count": 5, "ran_by": ["uffd_move", "(boot)"]}}
    assert p1["lines"][1]["function"] == "move" and p1["lines"][2]["cells"] == {}
    # the arm64 file is not compiled on x86_64: not executable there, absent from cells
    assert p2["lines"][1]["status"] == "not_executable" and p2["lines"][1]["cells"] == {}
    assert (p2["executable"], p2["run"]) == (1, 1)
    assert dirty["dirty"] and (dirty["executable"], dirty["run"]) == (1, 0)
    assert sec["cells"][X86] | {} == {"supported": True, "why": "", "profiled": ["mm/x.c"],
                                      "executable": 4, "run": 2}
    assert sec["profiled"] == ["mm/x.c"] and sec["tool"] == "gcov"


def test_merge_is_the_union_over_cells_and_says_which_arch_ran_a_line(tmp_path):
    a = write_run(tmp_path / "x86", [(cell("x86_64"), MOVE)])
    b = write_run(tmp_path / "arm", [(cell("arm64"), MOVE)])
    for d, sec in ((a, x86_only()), (b, arm_only())):
        rec = results.load(d / "results.json")
        rec.coverage = sec
        results.write(d / "results.json", rec)
    r = orch("merge", "--coverage", str(a), str(b), "-o", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "m" / "results.json").read_text())
    assert doc["schema_version"] == 2
    sec = doc["coverage"]
    p1 = sec["patches"][0]
    # line 11: not run on x86_64, run on arm64: run
    assert p1["lines"][1]["status"] == "run" and set(p1["lines"][1]["cells"]) == {X86, ARM}
    assert (p1["executable"], p1["run"]) == (2, 2)
    assert rescov.ran_where(p1["lines"][1]) == "arm64"
    assert rescov.ran_where(p1["lines"][0]) == "arm64, x86_64"
    p2 = sec["patches"][1]
    assert [ln["status"] for ln in p2["lines"]] == ["run", "not_run"]
    assert sec["cells"][ARM]["executable"] == 5 and sec["cells"][X86]["executable"] == 4
    md = (tmp_path / "m" / "summary.md").read_text()
    assert "| 1 | 0001-a.patch | 2 | 2 | 100.0% | 1/2 | 2/2 |" in md
    assert "| dirty | dirty | 1 | 0 | 0.0% | 0/1 | 0/1 |" in md
    assert "- `arch/arm64/mm/y.c:7` flush_all (0002-b.patch): `flush();`" in md
    assert "- `mm/x.c:20` move_swap (dirty): `swap_cache_path();`" in md
    assert "Lines run on some arches only (2):" in md
    assert "- `mm/x.c:11` move (0001-a.patch): run on arm64: `return -EBUSY;`" in md
    assert "- `include/linux/x.h:3` twice (0002-b.patch): run on x86_64: `return 2 * x;`" in md
    xml = etree.parse(str(tmp_path / "m" / rescov.COBERTURA))
    assert etree.DTD(str(DTD)).validate(xml), etree.DTD(str(DTD)).error_log
    lines = {(c.get("filename"), ln.get("number")): int(ln.get("hits"))
             for c in xml.iter("class") for ln in c.iter("line")}
    assert lines == {("mm/x.c", "10"): 8, ("mm/x.c", "11"): 1, ("mm/x.c", "20"): 0,
                     ("include/linux/x.h", "3"): 2, ("arch/arm64/mm/y.c", "7"): 0}
    assert xml.getroot().get("lines-valid") == "5" and xml.getroot().get("lines-covered") == "3"
    # a run without coverage is refused by --coverage, kept as is without it
    c = write_run(tmp_path / "plain", [(cell("x86_64", series="none"), MOVE)])
    r = orch("merge", "--coverage", str(a), str(c), "-o", str(tmp_path / "m2"))
    assert r.returncode == 2 and "has no patch coverage" in r.stderr
    assert orch("merge", str(a), str(c), "-o", str(tmp_path / "m3")).returncode == 0
    assert json.loads((tmp_path / "m3" / "results.json").read_text())["coverage"][
        "cells"].keys() == {X86}


def test_compare_shows_lines_gained_and_lost_by_text_not_line_number(tmp_path):
    base = x86_only()
    new = json.loads(json.dumps(base))
    for p in new["patches"]:  # the new version of the series moved every line by 3
        for ln in p["lines"]:
            ln["line"] += 3
    p1 = new["patches"][0]["lines"]
    p1[0]["cells"][X86]["count"], p1[0]["status"] = 0, "not_run"  # if (busy): lost
    p1[1]["cells"][X86]["count"], p1[1]["status"] = 4, "run"  # return -EBUSY: gained
    gl = rescov.gained_lost(base, new)
    assert [(r["file"], r["line"], r["base_line"], r["patch"]) for r in gl["gained"]] == \
        [("mm/x.c", 14, 11, "0001-a.patch")]
    assert [r["text"] for r in gl["lost"]] == ["\tif (busy)"]
    for side, sec in (("base", base), ("new", new)):
        d = write_run(tmp_path / side, [(cell("x86_64"), MOVE)])
        rec = results.load(d / "results.json")
        rec.coverage = sec
        results.write(d / "results.json", rec)
    r = orch("compare", "--coverage", str(tmp_path / "base"), str(tmp_path / "new"))
    assert r.returncode == 0, r.stderr
    assert "Patch coverage: 1 line(s) gained, 1 lost" in r.stdout
    assert "| lost | `mm/x.c:13` (was 10) | move | 0001-a.patch | `if (busy)` |" in r.stdout
    doc = json.loads((tmp_path / "new" / "compare.json").read_text())
    assert len(doc["coverage"]["gained"]) == 1
    plain = write_run(tmp_path / "plain", [(cell("x86_64"), MOVE)])
    r = orch("compare", "--coverage", str(plain), str(tmp_path / "new"))
    assert r.returncode == 2 and "has no patch coverage" in r.stderr


def test_junit_properties_and_kcidb_misc(tmp_path):
    import kcidb_io

    rec = results.Record(cells=[cell("x86_64", base_commit="a" * 40),
                                cell("arm64", base_commit="a" * 40)],
                         coverage=rescov.union([x86_only(), arm_only()]))
    rec.coverage["cells"][ARM] = {"supported": False, "why": "coverage under LAVA is not "
                                  "supported yet", "profiled": []}
    rescov.totals(rec.coverage)
    rec.tests = results.load(write_run(tmp_path,
                                       [(rec.cells[0], MOVE)]) / "results.json").tests
    xml = junit(rec)
    props = {p.name: p.value for s in xml for p in s.properties()}
    assert props["coverage"] == "2/4 added lines run (50.0%)"
    assert props["coverage.0001-a.patch"] == "1/2" and props["coverage.dirty"] == "0/1"
    doc = kcidb.document(rec)
    kcidb_io.schema.LATEST.validate(doc)
    misc = {b["architecture"]: b["misc"]["coverage"] for b in doc["builds"]}
    assert misc["x86_64"]["run"] == 2 and "mm/x.c:11 move (0001-a.patch)" in \
        misc["x86_64"]["not_run"]
    assert misc["arm64"] == {"supported": False, "why": "coverage under LAVA is not "
                             "supported yet"}


def test_schema_version_2_only_with_coverage(tmp_path):
    rec = results.Record(cells=[cell("x86_64")])
    assert rec.to_json()["schema_version"] == 1 and "coverage" not in rec.to_json()
    rec.coverage = x86_only()
    results.write(tmp_path / "r.json", rec)
    back = results.load(tmp_path / "r.json")
    assert back.coverage == rec.coverage and back.to_json()["schema_version"] == 2
    (tmp_path / "v3.json").write_text(json.dumps({**rec.to_json(), "schema_version": 3}))
    with pytest.raises(results.UsageError, match="newer than this orch reads"):
        results.load(tmp_path / "v3.json")


@pytest.mark.parametrize("command", ["merge", "compare"])
def test_a_malformed_coverage_section_is_one_line_and_exit_2(tmp_path, command):
    a = write_run(tmp_path / "a", [(cell("x86_64"), MOVE)])
    b = write_run(tmp_path / "b", [(cell("arm64"), MOVE)])
    sec = x86_only()
    del sec["patches"][0]["index"]
    for d in (a, b):
        rec = results.load(d / "results.json")
        rec.coverage = sec
        results.write(d / "results.json", rec)
    args = [str(a), str(b)] + (["-o", str(tmp_path / "m")] if command == "merge" else [])
    r = orch(command, *args)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "results.json: malformed coverage section" in err and "index" in err, err


def test_a_merge_without_coverage_leaves_no_old_coverage_xml(tmp_path):
    a = write_run(tmp_path / "a", [(cell("x86_64"), MOVE)])
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / rescov.COBERTURA).write_text("<coverage/>")
    assert orch("merge", str(a), "-o", str(tmp_path / "m")).returncode == 0
    assert not (tmp_path / "m" / rescov.COBERTURA).exists()
