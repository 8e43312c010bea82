"""The generated results artifacts as whole files: junit.xml and summary.md (orch merge),
the KCIDB document (orch merge --kcidb) and compare.md (orch compare), from a fixed set of
synthetic runs written with the record API. Nothing in them varies with the time or the
place of the test: orch runs in tmp_path with relative paths. A change to any of them is a
change to what CI and KernelCI read: `pytest --regen-golden tests/results` rewrites the
files under tests/results/golden/, and the diff is the review."""

import json

import kcidb_io
import pytest

from orchestrator.results import record as results
from tests.support.records import MOVE, cell, write_run, write_stage_error

SHA = "0123456789abcdef0123456789abcdef01234567"
COMPILER = "gcc (Debian 12.2.0-14) 12.2.0"
BUILT = {"apply": {"status": "ok"}, "config": {"status": "ok"},
         "build": {"status": "ok", "seconds": 12.5}, "boot": {"status": "ok"},
         "test": {"status": "ok"}}
WORSE = {"uffd_move": {"basic_move": "pass", "thp_ebusy": "fail", "zeropage": "pass",
                       "brand_new": "pass"},
         "vma_merge": {"new_before": "pass"}}


def ref(arch, code=0, **kw):
    """A cell of the upstream 6.12 reference, as a CI matrix job leaves it."""
    return cell(arch, "linux-6.12", "none", code, base_commit=SHA, compiler=COMPILER,
                kernel_release="6.12.1", accelerator="tcg", stages=BUILT, **kw)


def proto(arch, code=0, **kw):
    """A cell of the 6.1 prototype with the series."""
    return cell(arch, "linux-6.1", "uffd-move", code, base_commit=SHA, compiler=COMPILER,
                series_hash=results.patchset_hash(["b" * 64, "c" * 64]), series_patches=2,
                kernel_release="6.1.192", accelerator="tcg", **kw)


@pytest.fixture
def sides(tmp_path):
    """base/ and new/, each a directory of several runs (one per CI cell), as the CI
    compare job downloads them: base/ the reference, new/ the prototype."""
    write_run(tmp_path / "base" / "x86_64-6.12", [(ref("x86_64"), MOVE)])
    write_run(tmp_path / "base" / "arm64-6.12", [(ref("arm64"), MOVE)])
    write_run(tmp_path / "new" / "x86_64-6.1", [(proto("x86_64", 1, stages=BUILT), WORSE)])
    boot_failed = {**BUILT, "boot": {"status": "failed"}, "test": {"status": "skipped"}}
    write_stage_error(tmp_path / "new" / "arm64-6.1", proto("arm64", 3, stages=boot_failed),
                      "boot", "no login prompt within 300s", {"log": "arm64/console.log"})
    return tmp_path


def test_merge_artifacts_are_the_golden_files(sides, orch, golden):
    r = orch("merge", "base", "new", "-o", "merged", "--kcidb", "kcidb.json", cwd=sides)
    assert r.returncode == 3, r.stderr
    merged = sides / "merged"
    golden("summary.md", (merged / "summary.md").read_text())
    golden("junit.xml", (merged / "junit.xml").read_text())
    golden("kcidb.json", (sides / "kcidb.json").read_text())
    kcidb_io.schema.LATEST.validate(json.loads((sides / "kcidb.json").read_text()))
    # results.json is the record the others are rendered from: all of it but the time
    rec = json.loads((merged / "results.json").read_text())
    assert rec["created"] and rec["orch_version"]
    rec["created"], rec["orch_version"] = "CREATED", "VERSION"
    golden("merged-results.json", json.dumps(rec, indent=2) + "\n")


def test_compare_of_directories_holding_several_runs(sides, orch, golden):
    """The CI compare job: `orch compare base new`, each side a directory of runs (the bug
    of issue 14: this exited 2, "base: not an orch output directory")."""
    r = orch("compare", "base", "new", cwd=sides)
    assert r.returncode == 1, r.stderr  # thp_ebusy regressed on x86_64
    data = json.loads((sides / "new" / "compare.json").read_text())
    # both runs of each side are read (directories in name order), paired by arch
    assert [(p["base"], p["new"], p["by"]) for p in data["pairs"]] == [
        ("arm64.linux-6.12.none.default.qemu", "arm64.linux-6.1.uffd-move.default.qemu",
         "arch+profile"),
        ("x86_64.linux-6.12.none.default.qemu", "x86_64.linux-6.1.uffd-move.default.qemu",
         "arch+profile")]
    assert data["counts"]["regression"] == 1
    md = (sides / "new" / "compare.md").read_text()
    assert md == r.stdout
    golden("compare.md", md)
    # Nothing was written into the sides but compare's own files.
    assert sorted(p.name for p in (sides / "base").iterdir()) == ["arm64-6.12", "x86_64-6.12"]
    assert sorted(p.name for p in (sides / "new").iterdir()) == [
        "arm64-6.1", "compare.json", "compare.md", "report.html", "x86_64-6.1"]
