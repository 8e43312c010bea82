"""A side's batch when its machine goes away: a crash is the running program's outcome, the
machine boots again and the batch goes on; a machine lost twice for another reason is
infrastructure (exit 3), never a divergence."""

import pytest

from orchestrator.base.errors import InfraError
from orchestrator.fuzz import machines, trace
from orchestrator.fuzz.model import Op, Program
from orchestrator.testing import lostmachine

P = Program((Op("mmap", (0, 1, 0)),))


class FakeSide(machines.Side):
    """run_batch's logic with scripted attempts: each returns (executor output, lost)."""

    def __init__(self, script):
        super().__init__("prototype", run=None, say=lambda m: None)
        self.script, self.seen, self.reboots = list(script), [], []

    def _attempt(self, programs, timeout):
        self.seen.append([pid for pid, _ in programs])
        text, lost = self.script.pop(0)
        return trace.parse(text), lost

    def reboot(self, why):
        self.reboots.append(why)


def done(pid, extra=""):
    return f"P\t{pid}\no0\tmmap ok\n{extra}E\texit 0\n"


def test_a_crash_is_the_running_programs_outcome_and_the_rest_goes_on():
    crash = lostmachine.Lost(lostmachine.CRASH, "kernel crashed during orch_fuzz: BUG: x",
                             "BUG: x\nCall Trace:\n move_pages+0x1/0x2")
    side = FakeSide([(done("1") + "P\t2\no0\tmmap ok\n", crash), (done("3"), None)])
    outs = side.run_batch([("1", P), ("2", P), ("3", P)], 10)
    assert [o.end for o in outs] == ["exit 0", "crash", "exit 0"]
    assert outs[1].records == {"o0": "mmap ok"} and "BUG: x" in outs[1].excerpt
    assert side.seen == [["1", "2", "3"], ["3"]] and side.crashes == 1
    assert side.reboots == [crash.message]


def test_a_guest_that_hangs_whole_is_the_programs_hang():
    hung = lostmachine.Lost("hung", "the whole guest hung")
    side = FakeSide([("", hung), (done("2"), None)])
    outs = side.run_batch([("1", P), ("2", P)], 10)
    assert [o.end for o in outs] == ["hung", "exit 0"] and side.hangs == 1


def test_a_machine_lost_twice_is_infrastructure():
    gone = lostmachine.Lost(lostmachine.QEMU_GONE, "QEMU killed by SIGKILL")
    side = FakeSide([(done("1"), gone), ("", gone)])
    with pytest.raises(InfraError, match="QEMU killed by SIGKILL \\(twice\\)"):
        side.run_batch([("1", P), ("2", P)], 10)
    # once is retried: the batch's programs not yet done run again
    side = FakeSide([(done("1"), gone), (done("2"), None)])
    assert [o.end for o in side.run_batch([("1", P), ("2", P)], 10)] == ["exit 0", "exit 0"]


def test_an_oops_reboots_the_machine_after_the_batch():
    oops = "K\tBUG: kernel NULL pointer dereference, address: 0000000000000000\n"
    side = FakeSide([(done("1", oops), None)])
    side.run_batch([("1", P)], 10)
    assert len(side.reboots) == 1 and "NULL pointer" in side.reboots[0]
    side = FakeSide([(done("1", "K\tWARNING: CPU: 0 PID: 1 at mm/x.c:1 f+0x0/0x1\n"), None)])
    side.run_batch([("1", P)], 10)
    assert side.reboots == []  # a WARNING is not one
