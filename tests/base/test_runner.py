"""base/runner.py: no child of orch outlives it, however orch ends."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.base import runner

# A stand-in for `orch run` in its build stage: Runner runs a "make" (sh) whose own child
# (the "compiler", sleep) writes a file in the "build dir" a few seconds later.
CHILD = """
import sys
from orchestrator.base.runner import Runner
Runner().run(["sh", "-c", "sleep 4 & echo $! > " + sys.argv[1] + "; wait; "
              "echo late > " + sys.argv[2]])
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_orch_leaves_no_child_writing(tmp_path, sig):
    """Seen failing before the watchdog: after a SIGKILL of orch, make (its own process
    group, out of orch's) went on and wrote into the build dir."""
    pidfile, late = tmp_path / "pid", tmp_path / "late"
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(pidfile), str(late)])
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    p.send_signal(sig)
    p.wait(timeout=10)
    deadline = time.monotonic() + getattr(runner, "GRACE", 3) + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "orch's child outlived it"
    time.sleep(4.5)  # when the "compiler" would have finished
    assert not late.exists(), "a child of the stopped orch wrote after orch was gone"


def test_a_finished_child_is_not_killed_later(tmp_path):
    """The watchdog forgets a group whose command finished."""
    r = runner.Runner()
    res = r.run(["true"])
    assert res.ok and runner.watchdog_pid() is not None
    os.kill(runner.watchdog_pid(), 0)  # the watchdog is up while this process is
