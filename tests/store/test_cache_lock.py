"""cache.locked: a run waiting on another run's lock says whose it is."""

import os
import subprocess
import sys
import time

HOLDER = """
import sys, time
from pathlib import Path
from orchestrator.store import cache
with cache.locked(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""


def test_a_run_waiting_for_a_lock_names_the_holder(tmp_path):
    """Seen failing before filelock's try-then-wait: the second run waited in silence."""
    lock = tmp_path / "locks" / "work-linux-6.1-abcd.lock"
    env = dict(os.environ, ORCH_CACHE=str(tmp_path))
    first = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), "3", "orch-run-1"],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert first.stdout.readline().strip() == "held"
        start = time.monotonic()
        second = subprocess.run([sys.executable, "-c", HOLDER, str(lock), "0"],
                                capture_output=True, text=True, env=env, timeout=60)
        waited = time.monotonic() - start
        assert second.stdout.split() == ["held", "released"], second.stderr
        assert waited > 1.5, "the second did not wait for the first"
        lines = [ln for ln in second.stderr.splitlines() if "waiting" in ln]
        assert len(lines) == 1, second.stderr
        assert f"waiting for the tree lock held by PID {first.pid} (" in lines[0], lines
        assert "orch-run-1" in lines[0], lines
    finally:
        first.kill()
        first.wait()


def test_a_free_lock_is_taken_in_silence(tmp_path, capsys):
    from orchestrator.store import cache  # noqa: PLC0415

    with cache.locked(tmp_path / "work-x.lock"):
        pass
    assert capsys.readouterr().err == ""
