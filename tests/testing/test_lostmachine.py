"""Classifying a connection lost during a test (lostmachine.diagnose) on a fake console."""

import threading
from collections import deque
from pathlib import Path
from types import SimpleNamespace

from orchestrator.targets import qemu
from orchestrator.testing import lostmachine
from orchestrator.testing.kselftest import Program
from orchestrator.testing.lostmachine import CRASH, QEMU_GONE, Lost
from tests.support.fakes import FakeSession


class FakeGuest(qemu.Guest):
    def __init__(self, lines, exited=False, code=None, panicked=False):
        self.lines = deque(lines, maxlen=5000)
        self._nlines = len(lines)
        self.exited, self.panicked = threading.Event(), threading.Event()
        if exited:
            self.exited.set()
        if panicked:
            self.panicked.set()
        self.proc = SimpleNamespace(poll=lambda: code)
        self.problem_at = None


BOOT = ["[    0.000000] Linux version 6.1", "[    1.0] WARNING: CPU: 0 PID: 1 at foo"]


def test_panic_after_the_test_started_is_a_crash():
    g = FakeGuest(BOOT + ["[ 9.1] sysrq: Trigger a crash",
                          "[ 9.1] Kernel panic - not syncing: sysrq triggered crash",
                          "[ 9.1] CPU: 1 PID: 77 Comm: crash"], exited=True, code=0,
                  panicked=True)
    lost = lostmachine.diagnose(g, "crash", since=len(BOOT), wait=0.1)
    assert lost.kind == lostmachine.CRASH and not lost.infrastructure
    assert lost.message == ("kernel crashed during crash: [ 9.1] Kernel panic - not syncing: "
                            "sysrq triggered crash")
    assert "Comm: crash" in lost.excerpt


def test_qemu_killed_is_infrastructure_even_after_a_warning_at_boot():
    g = FakeGuest(BOOT, exited=True, code=-9)
    lost = lostmachine.diagnose(g, "uffd_move", since=len(BOOT), wait=0.1)
    assert lost.kind == lostmachine.QEMU_GONE and lost.infrastructure
    assert lost.message == ("QEMU was killed by SIGKILL during uffd_move (the host's OOM "
                            "killer, or another process)")


def test_a_warning_before_the_test_is_not_this_tests_crash():
    g = FakeGuest(BOOT)
    lost = lostmachine.diagnose(g, "cut", since=len(BOOT), detail="EOFError", wait=0.1)
    assert lost.kind == lostmachine.SSH_LOST
    assert lost.message == "SSH connection lost during cut (guest still running): EOFError"


def test_no_console_means_infrastructure():
    assert lostmachine.diagnose(None, "t").kind == lostmachine.SSH_LOST


def _suite():
    from orchestrator.testing import ktap, testrun

    s = testrun.Suite("x86_64", "crash")
    s.cases = [ktap.TestResult("before", "pass", 1),
               ktap.TestResult("test_2", "error", 2, "did not report (binary exited with "
                               "status None)"),
               ktap.TestResult("ssh", "error", message="SSH connection lost during crash")]
    return s


def test_reclassify_a_crash_as_the_tests_failure():
    s = _suite()
    lostmachine.reclassify(s, Lost(CRASH, "kernel crashed during crash: Kernel "
                                     "panic - not syncing: sysrq triggered crash",
                                     "Kernel panic - not syncing: sysrq triggered crash\n"
                                     "CPU: 1 PID: 7 Comm: crash"))
    assert s.counts() == {"pass": 1, "fail": 2, "skip": 0, "error": 0}
    crash = next(c for c in s.cases if c.name == "kernel_crash")
    assert crash.message.startswith("kernel crashed during crash")
    assert crash.diagnostics[1] == "CPU: 1 PID: 7 Comm: crash"


def test_reclassify_qemu_killed_as_infrastructure():
    s = _suite()
    lostmachine.reclassify(s, Lost(QEMU_GONE, "QEMU was killed by SIGKILL during "
                                     "crash"))
    assert s.counts() == {"pass": 1, "fail": 0, "skip": 0, "error": 2}
    assert [c.message for c in s.cases if c.name == "qemu"] == [
        "QEMU was killed by SIGKILL during crash"]


def _run_tests(tmp_path, isolated_cache, guest):
    from orchestrator.run import pipeline, stages
    from orchestrator.targets import registry as targets
    from orchestrator.targets.ssh import CmdResult

    run = pipeline.Run(pipeline.Options(output=tmp_path / "o", dry_run=True)).state
    st = run.states["x86_64"]
    st.tests = [Path("first"), Path("second")]
    st.programs = [Program(n, "selftests", n, n, timeout=300) for n in ("first", "second")]

    def lose(command):
        if command.endswith("/first"):
            guest.lines.extend(guest.later)
            guest._nlines += len(guest.later)
            guest.exited.set()
            return CmdResult(None, "KTAP version 1\n1..2\nok 1 a\n", "EOFError", 1.0,
                             lost=True)
        raise AssertionError("the second binary must not run")

    # the kmsg marker works, the first test binary loses the connection
    session = FakeSession([("/dev/kmsg", ""), ("/opt/orch/selftests/", lose)])
    st.machine = targets.Machine(session, "/opt/orch/selftests", guest=guest)
    return run, stages.run_tests(run, st)


def test_pipeline_crash_during_a_test_is_exit_1_and_the_rest_not_run(tmp_path,
                                                                    isolated_cache):
    g = FakeGuest(BOOT, code=0)
    g.later = ["[ 9.0] Kernel panic - not syncing: sysrq triggered crash", "[ 9.0] CPU: 0"]
    run, code = _run_tests(tmp_path, isolated_cache, g)
    assert code == 1
    first, second = run.suites
    assert {c.name: c.status for c in first.cases} == {"a": "pass", "test_2": "fail",
                                                       "kernel_crash": "fail"}
    assert [(c.status, c.kind) for c in second.cases] == [("skip", "crash")]
    assert run.states["x86_64"].error is None


def test_pipeline_qemu_killed_during_a_test_is_exit_3(tmp_path, isolated_cache):
    g = FakeGuest(BOOT, code=-9)
    g.later = []
    run, code = _run_tests(tmp_path, isolated_cache, g)
    assert code == 3
    first, second = run.suites
    assert [(c.status, c.kind) for c in second.cases] == [("error", "qemu")]
    assert str(run.states["x86_64"].error).startswith("QEMU was killed by SIGKILL during first")
