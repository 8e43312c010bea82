"""--coverage in a run, on the machine side (run/coverage.py), with fake machines: where the
gcov data comes from, when it cannot (LAVA, --no-deploy, a kernel without gcov) and that
this is said in the cell, never left silent."""

import json

from orchestrator import options
from orchestrator.base.errors import SSHError
from orchestrator.results import coverage as rescov
from orchestrator.run import coverage as covrun
from orchestrator.run import outputs
from orchestrator.run.pipeline import Run
from orchestrator.targets import Machine
from orchestrator.targets.ssh import CmdResult
from orchestrator.testing import gcovdata
from tests.support.fakes import FakeSession

GCDA = gcovdata.tar_of({"orch-gcov/mm#userfaultfd.gcda": b"data"})


class Guest(FakeSession):
    def get(self, command: str, timeout: float = 120.0) -> bytes:
        self.ran.append(command)
        return GCDA


def state(tmp_path, session, target=None, **facts):
    run = Run(options.make(output=tmp_path / "o", quiet=True, coverage=[],
                           **({"target": target} if target else {})))
    st = run.state.states["x86_64"]
    st.machine = Machine(session=session, tests_dir="/opt/orch/tests")
    st.target_facts = dict(facts)
    return run.state, st


def test_gcov_data_is_taken_after_boot_and_after_each_binary_reset_before(tmp_path):
    sess = Guest([("mount -t debugfs", "gcov-ok\n")])
    run, st = state(tmp_path, sess)
    covrun.start(run, st)
    for b in ("uffd_move", "vma_merge"):
        covrun.before(run, st, b)
        covrun.after(run, st, b)
    assert list(st.gcda) == ["(boot)", "uffd_move", "vma_merge"]
    assert (tmp_path / "o/x86_64/coverage/gcda/(boot).tar").read_bytes() == GCDA
    kinds = ["reset" if "reset" in c else "take" if "tar -C" in c else "prepare"
             for c in sess.ran]
    assert kinds == ["prepare", "take", "reset", "reset", "take", "reset", "take"]
    assert st.coverage is None  # supported: the coverage stage fills it in


def test_a_machine_that_cannot_give_gcov_data_says_so_in_the_cell(tmp_path):
    for session, target, facts, why in (
            (None, "lava", {}, "coverage under LAVA is not supported yet"),
            (Guest(), None, {"deploy": "none"}, "--no-deploy tests the machine's own kernel"),
            (Guest([("mount", CmdResult(1, "", "", 0.0))]), None, {},
             "the running kernel has no gcov data in debugfs")):
        run, st = state(tmp_path / why[:8].replace(" ", "_"), session, target, **facts)
        covrun.start(run, st)
        assert not st.coverage["supported"] and st.coverage["why"].startswith(why)
        covrun.before(run, st, "uffd_move")
        covrun.after(run, st, "uffd_move")
        assert st.gcda == {}
        covrun.analyse(run, st)  # nothing to do, nothing raised
        run.coverage_patches = []
        rec = outputs.record(run)
        cell = rec.coverage["cells"][rec.cells[0].id]
        assert cell == {"supported": False, "why": st.coverage["why"], "profiled": []}
        json.dumps(rec.to_json())


def test_no_gcov_data_taken_at_all_is_an_unsupported_cell_with_why(tmp_path):
    # every read of the counters failed: nothing to count, and the cell must not read as
    # 0 of 0 lines measured
    sess = Guest([("mount -t debugfs", "gcov-ok\n")])
    sess.get = lambda command, timeout=120.0: (_ for _ in ()).throw(
        SSHError("connection lost"))
    run, st = state(tmp_path, sess)
    covrun.start(run, st)
    covrun.before(run, st, "uffd_move")
    covrun.after(run, st, "uffd_move")
    assert st.gcda == {}
    covrun.analyse(run, st)
    assert st.coverage["supported"] is False
    assert st.coverage["why"].startswith("no gcov data was taken"), st.coverage["why"]


def test_a_failed_reset_stops_attributing_counts_and_says_why(tmp_path):
    resets = iter([0, 0, 1])  # after boot and before uffd_move: done; before vma_merge: not
    sess = Guest([("mount -t debugfs", "gcov-ok\n"),
                  ("reset", lambda c: CmdResult(next(resets, 1), "", "", 0.0))])
    run, st = state(tmp_path, sess)
    covrun.start(run, st)
    for b in ("uffd_move", "vma_merge", "khugepaged"):
        covrun.before(run, st, b)
        covrun.after(run, st, b)
    # vma_merge's data would hold uffd_move's counts too: not taken, nor any after it
    assert list(st.gcda) == ["(boot)", "uffd_move"]
    assert "could not be reset before vma_merge" in st.coverage_stopped
    assert sum("reset" in c for c in sess.ran) == 3


def test_a_failed_coverage_stage_is_an_unsupported_cell_with_the_error(tmp_path):
    run, st = state(tmp_path, Guest([("mount -t debugfs", "gcov-ok\n")]))
    covrun.start(run, st)
    st.stages["coverage"] = {"status": "failed", "error": "gcov-12 not found"}
    run.coverage_patches = []
    rec = outputs.record(run)
    assert rec.coverage["cells"][rec.cells[0].id] == {
        "supported": False, "why": "the coverage stage failed: gcov-12 not found",
        "profiled": []}


def test_a_run_without_coverage_leaves_no_old_coverage_xml(tmp_path):
    run = Run(options.make(output=tmp_path / "o", quiet=True)).state
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / rescov.COBERTURA).write_text("<coverage/>")
    outputs.write(run)
    assert not (run.out / rescov.COBERTURA).exists()
