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


def test_the_wp_probe_finds_the_kernel_without_uffd_wp(monkeypatch):
    """The probe's outcomes, as 6.1 and 6.12 give them on arm64: the prototype's wp
    registration is EINVAL, so programs use no wp."""
    from orchestrator.fuzz import trace

    def both(a, b, programs, timeout):
        assert programs == [("probe-wp", session.WP_PROBE)]
        def mk(rec):
            return [trace.Outcome("probe-wp", {"o0": "mmap ok", "o1": rec}, end="exit 0")]
        return mk("ureg -1 EINVAL"), mk("ureg 0 ok ioctls=0x17c")
    monkeypatch.setattr(session, "run_both", both)
    sides = (SimpleNamespace(name="prototype"), SimpleNamespace(name="reference"))
    features = session.probe(*sides, 10)
    assert features == {"uffd_wp": {"prototype": False, "reference": True}}
    from orchestrator.fuzz.engine import ArchRun
    ar = ArchRun("arm64", 1)
    assert ar.wp
    ar.features = features
    assert not ar.wp


def test_a_probe_that_does_not_run_through_is_infrastructure(monkeypatch):
    from orchestrator.fuzz import trace
    monkeypatch.setattr(session, "run_both", lambda a, b, p, t: (
        [trace.Outcome("probe-wp", end="lost")],
        [trace.Outcome("probe-wp", {"o1": "ureg 0 ok"}, end="exit 0")]))
    sides = (SimpleNamespace(name="prototype"), SimpleNamespace(name="reference"))
    with pytest.raises(InfraError, match="prototype: the uffd-wp probe did not run through"):
        session.probe(*sides, 10)


def test_the_wp_probe_on_this_hosts_kernel(run_programs):
    """The probe program itself, run by the real executor on the host's kernel (x86_64,
    which has uffd-wp): its record is the one probe() reads."""
    (o,) = run_programs([session.WP_PROBE])
    assert o.end == "exit 0" and o.records["o1"].startswith("ureg 0 ok"), o
