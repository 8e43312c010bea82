"""orch merge / orch compare on records written by orch's own writer (results.write)."""

import json
import os
import xml.etree.ElementTree as ET

import pytest

from orchestrator.results import compare, merge
from orchestrator.results import record as results
from orchestrator.results.record import Record
from orchestrator.testing import ktap, testrun
from orchestrator.testing.testrun import Suite
from tests.support.orch import orch
from tests.support.records import MOVE, cell, write_run


def test_merge_two_runs_summary_junit_exit(tmp_path):
    a = write_run(tmp_path / "artifacts" / "x86", [(cell("x86_64"), MOVE)])
    bad = {**MOVE, "vma_merge": {"new_before": "pass", "new_after": "fail"}}
    write_run(tmp_path / "artifacts" / "arm" / "nested", [(cell("arm64", code=1), bad)])
    out = tmp_path / "merged"
    r = orch("merge", str(a), str(tmp_path / "artifacts" / "arm"), "-o", str(out))
    assert r.returncode == 1, r.stderr
    rec = results.load(out / "results.json")
    assert rec.kind == "merge" and [c.id for c in rec.cells] == [
        "x86_64.linux-6.1.uffd-move.default.qemu", "arm64.linux-6.1.uffd-move.default.qemu"]
    # log paths are re-based on OUT and still point at the files
    for t in rec.tests:
        for p in t.logs.values():
            assert (out / p).is_file(), p
    md = (out / "summary.md").read_text()
    assert md == r.stdout
    assert "| cell | result | uffd_move | vma_merge |" in md
    assert "[3 passed, 0 failed, 1 skipped](../artifacts/x86/x86_64/tests/uffd_move.ktap)" in md
    assert "❌ [2 passed, 1 failed, 0 skipped](../artifacts/arm/nested/arm64/tests/" in md
    assert "**new_after** (fail, ktap): new_after: expected 1 VMA, found 2" in md
    root = ET.parse(out / "junit.xml").getroot()
    names = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert len(names) == len(set(names)) == len(rec.tests)
    assert {c for c, _ in names} >= {"x86_64.linux-6.1.uffd-move.default.qemu.vma_merge",
                                     "arm64.linux-6.1.uffd-move.default.qemu.vma_merge"}


def test_merge_exit_is_the_worst_cell(tmp_path):
    write_run(tmp_path / "a", [(cell("x86_64", code=1), MOVE)])
    write_run(tmp_path / "b", [(cell("arm64", code=3), MOVE)])
    write_run(tmp_path / "c", [(cell("x86_64", "linux-6.12", "none"), MOVE)])
    assert orch("merge", str(tmp_path), "-o", str(tmp_path / "m")).returncode == 3
    unfinished = cell("arm64", "linux-6.12", "none")
    unfinished.exit_code = None
    write_run(tmp_path / "d", [(unfinished, MOVE)])
    rec = merge.merge([tmp_path / "a", tmp_path / "d"], tmp_path / "m2")
    assert merge.exit_code(rec) == 3  # a run killed before its verdict is infrastructure


def test_merge_same_cell_twice_is_an_error_naming_both(tmp_path):
    write_run(tmp_path / "a", [(cell("x86_64"), MOVE)])
    write_run(tmp_path / "b", [(cell("x86_64"), MOVE)])
    r = orch("merge", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "m"))
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()
    assert len(last) == 1 and "cell x86_64.linux-6.1.uffd-move.default.qemu is in both" in \
        last[0] and str(tmp_path / "a") in last[0] and str(tmp_path / "b") in last[0]


def test_merge_not_an_orch_dir(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    r = orch("merge", str(tmp_path / "junk"), "-o", str(tmp_path / "m"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"orch: merge: {tmp_path / 'junk'}: not an orch output " \
        "directory (no results.json in it or below)"
    r = orch("merge", str(tmp_path / "nope"), "-o", str(tmp_path / "m"))
    assert r.returncode == 2 and "no such directory" in r.stderr


def test_merge_of_merges_and_rerun_into_the_same_tree(tmp_path):
    write_run(tmp_path / "art" / "a", [(cell("x86_64"), MOVE)])
    write_run(tmp_path / "art" / "b", [(cell("arm64"), MOVE)])
    out = tmp_path / "art" / "merged"
    assert orch("merge", str(tmp_path / "art"), "-o", str(out)).returncode == 0
    # again, OUT below the input: the earlier merge is not read as a third input
    assert orch("merge", str(tmp_path / "art"), "-o", str(out)).returncode == 0
    assert len(results.load(out / "results.json").cells) == 2
    # a merged directory merges on, its cells keep their origin and logs
    write_run(tmp_path / "c", [(cell("x86_64", "linux-6.12", "none"), MOVE)])
    r = orch("merge", str(out), str(tmp_path / "c"), "-o", str(tmp_path / "m2"))
    assert r.returncode == 0, r.stderr
    rec = results.load(tmp_path / "m2" / "results.json")
    assert [c.source for c in rec.cells] == ["../art/a", "../art/b", "../c"]
    assert all((tmp_path / "m2" / p).is_file() for t in rec.tests for p in t.logs.values())


@pytest.mark.parametrize("base, new, cls", [
    ("pass", "fail", "regression"), ("pass", "error", "regression"), ("fail", "pass", "fix"),
    ("error", "pass", "fix"), (None, "pass", "new"), ("pass", None, "gone"),
    ("skip", "pass", "fix"), ("pass", "skip", "skip-change"),
    ("fail", "error", "still-failing"), ("fail", "fail", "unchanged"),
    ("pass", "pass", "unchanged")])
def test_classify(base, new, cls):
    assert compare.classify(base, new) == cls


def test_pairing_by_id_then_series_then_arch():
    b = [cell("x86_64"), cell("arm64")]
    n = [cell("x86_64", "linux-6.12", "none"), cell("arm64", "linux-6.12", "none")]
    pairs = compare.pair_cells(b, n)
    assert [(p.base.split(".")[0], p.new.split(".")[0], p.by) for p in pairs] == [
        ("x86_64", "x86_64", "arch+profile"), ("arm64", "arm64", "arch+profile")]
    same = compare.pair_cells(b, [cell("arm64"), cell("x86_64", series="uffd-move+pgoff")])
    assert {(p.base, p.new, p.by) for p in same} == {
        (b[1].id, b[1].id, "id"),
        (b[0].id, "x86_64.linux-6.1.uffd-move+pgoff.default.qemu", "arch+tree")}
    # two candidates on one side and nothing to tell them apart: left unpaired, said so
    amb = compare.pair_cells([cell("x86_64")], [cell("x86_64", "a", "s"),
                                                cell("x86_64", "b", "s")])
    assert sorted(p.by for p in amb) == ["unpaired", "unpaired", "unpaired"]


def test_compare_runs_regressions_and_tables(tmp_path):
    base = write_run(tmp_path / "base", [(cell("x86_64"), MOVE), (cell("arm64"), MOVE)])
    worse = {"uffd_move": {"basic_move": "pass", "thp_ebusy": "error", "zeropage": "pass",
                           "brand_new": "pass"},
             "vma_merge": {"new_before": "fail"}}
    new = write_run(tmp_path / "new", [(cell("x86_64", series="s2", code=1), worse),
                                       (cell("arm64", series="s2"), MOVE)])
    r = orch("compare", str(base), str(new))
    assert r.returncode == 1, r.stderr
    data = json.loads((new / "compare.json").read_text())
    got = {(c["binary"], c["name"]): c["cls"] for c in data["changes"]
           if c["new_cell"].startswith("x86_64")}
    assert got == {("uffd_move", "basic_move"): "unchanged",
                   ("uffd_move", "thp_ebusy"): "regression",
                   ("uffd_move", "zeropage"): "fix",  # skipped before, passes now
                   ("uffd_move", "dmesg_clean"): "unchanged",
                   ("uffd_move", "brand_new"): "new",
                   ("vma_merge", "new_before"): "regression",
                   ("vma_merge", "new_after"): "gone",
                   ("vma_merge", "dmesg_clean"): "unchanged"}
    md = (new / "compare.md").read_text()
    assert md == r.stdout
    assert "| regression | vma_merge | new_before | pass | fail | new_before: expected 1 VMA" \
        in md
    assert "| `x86_64.linux-6.1.uffd-move.default.qemu` | " \
        "`x86_64.linux-6.1.s2.default.qemu` | arch+tree | 2 | 1 | 1 | 1 | 0 | 0 | 3 |" in md
    # the other way round, the regressions are fixes: exit 0, written where asked
    r = orch("compare", str(new), str(base), "-o", str(tmp_path / "c"))
    assert r.returncode == 0 and (tmp_path / "c" / "compare.md").is_file()
    assert not (base / "compare.md").exists()


def test_compare_infra_in_new_is_not_a_pass(tmp_path):
    base = write_run(tmp_path / "base", [(cell("x86_64"), MOVE)])
    new = write_run(tmp_path / "new", [(cell("x86_64", code=3), {})])
    assert orch("compare", str(base), str(new)).returncode == 3


def test_compare_bad_input(tmp_path):
    base = write_run(tmp_path / "base", [(cell("x86_64"), MOVE)])
    r = orch("compare", str(base), str(tmp_path / "nothing"))
    assert r.returncode == 2 and r.stderr.startswith("orch: compare: ")
    assert len(r.stderr.strip().splitlines()) == 1
    os.makedirs(tmp_path / "bad")
    (tmp_path / "bad" / "results.json").write_text("{}")
    r = orch("compare", str(base), str(tmp_path / "bad"))
    assert r.returncode == 2 and "not an orch results file" in r.stderr


def test_kcidb_document_validates_with_kcidb_io(tmp_path):
    import jsonschema
    import kcidb_io  # the [test] extra (pyproject.toml); missing it is a failure, not a skip

    write_run(tmp_path / "a", [(cell("x86_64", base_commit="a" * 40,
                                     series_hash=results.patchset_hash(["b" * 64]),
                                     compiler="gcc (Debian 12.2.0-14) 12.2.0",
                                     stages={"apply": {"status": "ok"},
                                             "build": {"status": "ok", "seconds": 12.5}}),
                                MOVE)])
    # an arm64 cell whose boot failed: its stage error is a MISS, not a FAIL
    broken = cell("arm64", code=3, base_commit="a" * 40,
                  stages={"apply": {"status": "ok"}, "build": {"status": "ok"},
                          "boot": {"status": "failed"}})
    rec = Record(cells=[broken])
    s = Suite("arm64", "orch-boot")
    s.cases = [ktap.TestResult("boot", "error", message="boot timeout", kind="stage")]
    rec.tests = testrun.record_cases(broken.id, s, "", {"log": "arm64/console.log"})
    (tmp_path / "b").mkdir()
    results.write(tmp_path / "b" / "results.json", rec)
    # a cell whose build failed: a FAIL build, and no tests
    nobuild = cell("x86_64", "linux-6.12", "none", code=3,
                   stages={"apply": {"status": "ok"}, "build": {"status": "failed"}})
    rec = Record(cells=[nobuild])
    s = Suite("x86_64", "orch-build")
    s.cases = [ktap.TestResult("build", "error", message="kernel build failed", kind="stage")]
    rec.tests = testrun.record_cases(nobuild.id, s, "", {})
    (tmp_path / "c").mkdir()
    results.write(tmp_path / "c" / "results.json", rec)
    # an error testcase of a test that started (a hang): ERROR
    hang = {"uffd_move": {"basic_move": "pass"}}
    write_run(tmp_path / "d", [(cell("arm64", "linux-6.12", "none", code=1), hang)])
    d = results.load(tmp_path / "d" / "results.json")
    d.tests.append(results.TestCase(d.cells[0].id, "uffd_move", "timeout", "error",
                                    kind="timeout", message="uffd_move hung"))
    # a testcase a kernel report failed: its triage record travels in misc
    oops = {"kind": "oops", "title": "BUG: kernel NULL pointer dereference",
            "file": "mm/userfaultfd.c", "line": 1585, "patch": "0009-crash",
            "fatal": True, "frames": [{"function": "uffd_move_pages", "offset": "0x44/0x1d0",
                                       "file": "mm/userfaultfd.c", "line": 1585,
                                       "patch": "0009-crash", "reliable": True}]}
    d.tests.append(results.TestCase(d.cells[0].id, "uffd_move", "move_crash", "fail",
                                    kind="kernel_crash", message="BUG: ...",
                                    reports=[oops]))
    results.write(tmp_path / "d" / "results.json", d)

    doc_path = tmp_path / "kcidb.json"
    r = orch("merge", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c"),
             str(tmp_path / "d"), "-o", str(tmp_path / "m"), "--kcidb", str(doc_path))
    assert r.returncode == 3, r.stderr
    doc = json.loads(doc_path.read_text())
    kcidb_io.schema.LATEST.validate(doc)  # raises on any schema violation
    assert kcidb_io.schema.LATEST.is_valid(doc)
    bad = json.loads(doc_path.read_text())
    bad["tests"][0]["status"] = "BROKEN"  # the validation really looks at the document
    with pytest.raises(jsonschema.ValidationError):
        kcidb_io.schema.LATEST.validate(bad)
    assert doc["version"] == {"major": 5, "minor": 3}
    tests = {(t["misc"]["cell"], t["path"]): t["status"] for t in doc["tests"]}
    x86 = "x86_64.linux-6.1.uffd-move.default.qemu"
    assert tests[(x86, "orch.uffd_move.basic_move")] == "PASS"
    assert tests[(x86, "orch.uffd_move.zeropage")] == "SKIP"
    assert tests[("arm64.linux-6.1.uffd-move.default.qemu", "orch.boot")] == "MISS"
    assert tests[("arm64.linux-6.12.none.default.qemu", "orch.uffd_move.timeout")] == "ERROR"
    crashed = next(t for t in doc["tests"] if t["path"] == "orch.uffd_move.move_crash")
    assert crashed["status"] == "FAIL" and crashed["misc"]["reports"] == [oops]
    assert "reports" not in next(t for t in doc["tests"] if t["status"] == "PASS")["misc"]
    assert not any(c == "x86_64.linux-6.12.none.default.qemu" for c, _ in tests)
    builds = {b["misc"]["cell"]: b for b in doc["builds"]}
    assert builds["x86_64.linux-6.12.none.default.qemu"]["status"] == "FAIL"
    assert builds[x86]["status"] == "PASS" and builds[x86]["duration"] == 12.5
    co = {c["id"]: c for c in doc["checkouts"]}
    assert len(co) == 3  # linux-6.1 with and without a patchset hash, linux-6.12
    assert all(t["origin"] == "orch" and t["id"].startswith("orch:") for t in doc["tests"])
    x86co = next(c for c in doc["checkouts"] if c.get("git_commit_hash") == "a" * 40
                 and c["patchset_hash"])
    assert x86co["valid"] is True


def test_compare_md_collapses_binaries_that_ran_on_one_side(tmp_path):
    base = write_run(tmp_path / "base", [(cell("x86_64"), MOVE), (cell("arm64"), MOVE)])
    new = write_run(tmp_path / "new", [(cell("x86_64", series="s2"),
                                        {"vma_merge": MOVE["vma_merge"]})])
    r = orch("compare", str(base), str(new))
    assert r.returncode == 0, r.stdout + r.stderr
    md = (new / "compare.md").read_text()
    assert "| gone | uffd_move | (all 4 tests) | 3 pass, 1 skip | – | |" in md
    assert "| `arm64.linux-6.1.uffd-move.default.qemu` | `–` | unpaired | 0 | 0 | 0 | 7 |" in md
    assert "basic_move" not in md  # listed in compare.json, not one row each
    data = json.loads((new / "compare.json").read_text())
    assert sum(c["cls"] == "gone" for c in data["changes"]) == 11
