"""A whole arch's fuzzing (session.py) around sides that fail: both machines go down."""

from types import SimpleNamespace

import pytest

from orchestrator.base.errors import InfraError
from orchestrator.fuzz import session


def test_a_side_that_fails_to_close_does_not_leave_the_other_up(monkeypatch, tmp_path):
    closed: list[str] = []

    class FailingSide:
        def __init__(self, name, run, say):
            self.name = name
            self.st = SimpleNamespace(stages=[])
            self.boots = self.crashes = self.hangs = 0
            self.seconds = 0.0

        def up(self):
            raise InfraError("no machine")

        def close(self):
            closed.append(self.name)
            if self.name == "prototype":
                raise InfraError("qemu would not stop")

    monkeypatch.setattr(session, "Side", FailingSide)
    monkeypatch.setattr(session, "Run", lambda opts: None)
    monkeypatch.setattr(session, "side_options", lambda *a: None)
    cfg = session.Config(base=SimpleNamespace(tree="t", series="s"), against="r",
                         against_series="none", out=tmp_path, seed=1)
    with pytest.raises(InfraError, match="qemu would not stop"):
        session.fuzz_arch(cfg, SimpleNamespace(name="x86_64"), lambda m: None, [])
    assert closed == ["prototype", "reference"]
