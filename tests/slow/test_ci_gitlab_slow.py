"""The shipped GitLab pipeline, run end to end here under gitlab-ci-local (shell jobs, each
in its own copy of the repository): plan job, trigger, the child pipeline's two cells of
configs/plans/smoke.yaml, merge and compare. The cells use the test session's orch cache
(ORCH_CACHE handed to every job), so their kernels are the ones the other slow tests build:
6.1 + patches/uffd-move and 6.12, x86_64.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
from junitparser import JUnitXml

from orchestrator.store.cache import cache_root

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CELLS = ["x86_64-6.1-uffd-move", "x86_64-6.12"]


def test_gitlab_pipeline_two_cells_merge_and_compare(tmp_path):
    pipe = tmp_path / "pipe"
    r = subprocess.run(["bash", str(ROOT / "ci/gitlab-local.sh"), str(pipe),
                        "ORCH_PLAN=configs/plans/smoke.yaml", f"ORCH_CACHE={cache_root()}"],
                       capture_output=True, text=True, timeout=3600)
    log = (pipe / "pipeline.log").read_text() if (pipe / "pipeline.log").exists() else ""
    assert r.returncode == 0, r.stdout + r.stderr + log[-6000:]
    for job in ["orch-plan", "orch-cells"] + [f"[orch-cells] -> {c}" for c in
                                              CELLS + ["merge", "compare"]]:
        # The merge job has a `coverage:` regex: gitlab-ci-local prints its figure after the
        # name (0% when nothing matched: this plan has no coverage cell).
        assert re.search(rf"^ PASS  {re.escape(job)}\s*(\d+(\.\d+)?% coverage)?\s*$",
                         r.stdout, re.M), (job, r.stdout)

    art = pipe / ".gitlab-ci-local/artifacts"
    per_cell = {}
    for c in CELLS:
        # The cell job's own artifact (merge's artifact also carries out/).
        found = [p for p in art.glob(f"*/out/{c}/junit.xml")
                 if p.relative_to(art).parts[0] not in ("merge", "compare")]
        assert len(found) == 1, f"the artifact of cell {c}"
        per_cell[c] = JUnitXml.fromfile(str(found[0]))
        meta = json.loads((found[0].parent / "metadata.json").read_text())
        assert meta["exit_code"] == 0 and meta["inputs"]["selftests"]["only"] == [
            "uffd_move_probe", "uffd_move"]

    merged_dir = art / "merge/merged"
    merged = JUnitXml.fromfile(str(merged_dir / "junit.xml"))
    record = json.loads((merged_dir / "results.json").read_text())
    ids = [c["id"] for c in record["cells"]]
    assert sorted(ids) == ["x86_64.linux-6.1.uffd-move.default.qemu",
                           "x86_64.linux-6.12.none.default.qemu"]
    cases = [(case.classname, case.name) for suite in merged for case in suite]
    # Both cells present, every classname names its cell, none shared between cells.
    by_cell = {i: {cls for cls, _ in cases if cls.startswith(i + ".")} for i in ids}
    assert all(by_cell.values()) and not set.intersection(*by_cell.values())
    assert all(any(cls.startswith(i + ".") for i in ids) for cls, _ in cases)
    assert len(cases) == len(set(cases))
    # Counts: the merge holds exactly the cells' testcases, all passing.
    assert len(cases) == sum(sum(1 for s in x for _ in s) for x in per_cell.values())
    assert sum(s.failures + s.errors for s in merged) == 0
    binaries = {t["binary"] for t in record["tests"]}
    assert binaries == {"uffd_move_probe", "uffd_move"}
    assert (merged_dir / "summary.md").read_text().count("x86_64.linux-6.") >= 2

    cmp = json.loads((art / "compare/compare/compare.json").read_text())
    assert cmp["exit_code"] == 0, cmp["counts"]
    assert len(cmp["pairs"]) == 1
