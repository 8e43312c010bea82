"""What the unit tests must not leave behind or reach: the user's orch cache (each test gets
a private one without asking: tests/conftest.py), and orch's SIGINT/SIGTERM handlers after
`cli.main` ran in-process (Ctrl-C in pytest would raise orch's Interrupted in a test)."""

import os
import signal
from pathlib import Path

from orchestrator.cli import main as cli
from orchestrator.store import cache


def test_a_test_that_asks_for_nothing_has_a_private_cache(tmp_path):
    # tmp_path is the test's own: the cache is under the same per-test base directory
    assert Path(os.environ["ORCH_CACHE"]).parent == tmp_path
    assert cache.cache_root() == Path(os.environ["ORCH_CACHE"]).resolve()
    assert cache.cache_root() != (Path.home() / ".cache" / "orch").resolve()


def test_cli_main_leaves_the_signal_handlers_as_it_found_them(capsys):
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert cli.main(["plan", "default", "--format", "names"]) == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert cli.main(["plan", "/nonexistent.yaml"]) == 2  # an error on the way out too
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    capsys.readouterr()
