"""The slow tier for kselftest builds: 6.12's own `mm` collection really built with the
tree's Makefiles for x86_64, from orch's worktree of the embedded linux-6.12 tree, into the
real cache (a warm cache makes this test take seconds; cold, a few minutes).

It checks what the mm runs need: uffd-unit-tests static with its move cases, run_vmtests.sh
and run_kselftest.sh installed, the worktree left clean, and a second build compiling
nothing.
"""

import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.base.runner import Runner
from orchestrator.kernel import arch as archmod
from orchestrator.kernel import tree as treemod
from orchestrator.run.pipeline import tree_lock
from orchestrator.run.sources import kselftest_source_id
from orchestrator.testing import kselftest_build as kb

pytestmark = pytest.mark.slow


def interp(path: Path) -> bool:
    out = subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True).stdout
    return "Requesting program interpreter" in out


def test_612_mm_builds_static_for_x86_64(tmp_path):
    runner = Runner()
    tree = treemod.resolve("linux-6.12", runner)
    base = treemod.resolve_base(tree, None, runner)
    log = tmp_path / "kselftest.log"
    with tree_lock(tree):
        wt = treemod.prepare_worktree(tree, base, runner)
        # the run's own key (run.sources): this build is the one the slow runs then reuse
        source_id = kselftest_source_id(wt, archmod.X86_64, runner)
        got = kb.build(archmod.X86_64, wt, source_id, ["mm"], runner, log)
        status = subprocess.run(["git", "-C", str(wt), "status", "--porcelain", "--ignored",
                                 "--", "tools", "usr", "include"],
                                capture_output=True, text=True).stdout
        start = time.monotonic()
        again = kb.build(archmod.X86_64, wt, source_id, ["mm"], runner, log)
        cached = time.monotonic() - start
    assert status == "", f"the build wrote into the worktree:\n{status}"
    assert not again.compiled and cached < 5 and again.key == got.key

    mm = got.dir / "mm"
    uffd = mm / "uffd-unit-tests"
    assert uffd.is_file() and not interp(uffd), "uffd-unit-tests is missing or dynamic"
    assert (got.dir / "run_kselftest.sh").is_file() and (mm / "run_vmtests.sh").is_file()
    assert got.programs["mm"] == ["run_vmtests.sh"]
    assert "mm:uffd-unit-tests" not in got.unbuilt and "6.12" in got.headers
    cases = subprocess.run([str(uffd), "-l"], capture_output=True, text=True,
                           timeout=60).stdout.split()
    assert {"move", "move-pmd", "move-pmd-split"} <= set(cases)
