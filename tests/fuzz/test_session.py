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


def _group(sig_key: str, proto: str, ref: str, ops):
    from orchestrator.fuzz import diff, trace
    from orchestrator.fuzz.engine import Group
    from orchestrator.fuzz.model import Op, Program
    program = Program(tuple(Op(k, a) for k, a in ops))
    oa = trace.Outcome("1", {"o0": "mmap ok", sig_key: proto}, end="exit 0")
    ob = trace.Outcome("1", {"o0": "mmap ok", sig_key: ref}, end="exit 0")
    v = diff.compare(oa, ob, program, [])
    assert v.diverged
    return Group("x86_64", v.signature, 1, program, v, (oa, ob), 1.0, ["1"], reproduced=True)


def test_a_divergence_is_attributed_by_running_it_on_the_base_kernel():
    """The base kernel (the prototype's tree without its series) runs each divergence's
    program: like the prototype -> the base's (not a failure); like the reference -> the
    series'; a program that moves pages cannot run there -> undetermined."""
    from orchestrator.fuzz import trace
    from orchestrator.fuzz.report import ArchReport
    mm = ("mmap", (0, 1, 0))
    base_like_proto = _group("o1", "wp -1 ENOENT", "wp 0 ok", [mm, ("wp", (0, 0, 1, 1))])
    base_like_ref = _group("o1", "madv -1 EINVAL", "madv 0 ok",
                           [mm, ("madv", (0, 0, 1, "cold"))])
    moves = _group("o1", "move -1 EBUSY", "move 0 ok", [mm, ("move", (0, 0, 0, 0, 1, 0, 0))])
    neither = _group("o1", "mprot -1 EINVAL", "mprot 0 ok", [mm, ("mprot", (0, 0, 1, "r"))])
    ran = []

    class Base:
        name = "base"
        cell_id = "x86_64.linux-6.1.none.default.qemu"
        st = SimpleNamespace(arch=SimpleNamespace(name="x86_64"))

        def run_batch(self, programs, timeout):
            ran.extend(p for _, p in programs)
            recs = ["wp -1 ENOENT", "madv 0 ok", "mprot -1 EPERM"]
            return [trace.Outcome(pid, {"o0": "mmap ok", "o1": r}, end="exit 0")
                    for (pid, _), r in zip(programs, recs, strict=True)]
    groups = [base_like_proto, base_like_ref, moves, neither]
    session.attribute(groups, Base(), [], 10, lambda m: None)
    assert ran == [base_like_proto.program, base_like_ref.program, neither.program]
    assert [g.attribution["to"] for g in groups] == ["base", "series", "undetermined",
                                                      "undetermined"]
    assert "no UFFDIO_MOVE" in moves.attribution["why"]
    assert [g.counts for g in groups] == [False, True, True, True]
    from orchestrator.fuzz.engine import ArchRun
    ar = ArchRun("x86_64", 1, groups={"a": base_like_proto})
    assert ArchReport("x86_64", ar).exit_code == 0  # the base's only: the run passes
    ar.groups["b"] = base_like_ref
    assert ArchReport("x86_64", ar).exit_code == 1
    from orchestrator.fuzz.report import group_case
    t = group_case("c", base_like_proto, session.Path("/tmp"))
    assert t.status == "skip" and t.message.startswith(
        "a difference of the base kernel, not the series (x86_64.linux-6.1.none.default.qemu "
        "differs from the reference the same way)")
    assert group_case("c", base_like_ref, session.Path("/tmp")).status == "fail"


def test_a_program_that_moves_is_attributed_by_its_program_without_moves(monkeypatch):
    """The base has no UFFDIO_MOVE: the program without its moves runs on the prototype
    and the reference; if it still diverges so, it runs on the base in its stead."""
    from orchestrator.fuzz import trace
    mm, mv = ("mmap", (0, 1, 0)), ("move", (0, 0, 0, 0, 1, 0, 0))
    needs_no_move = _group("o2", "wp -1 ENOENT", "wp 0 ok", [mm, mv, ("wp", (0, 0, 1, 1))])
    needs_move = _group("o1", "move -1 EBUSY", "move 0 ok", [mm, mv])
    seen = []

    def both(a, b, programs, timeout):
        seen.extend(p for _, p in programs)
        def out(pid, rec):
            return trace.Outcome(pid, {"o0": "mmap ok", "o1": rec}, end="exit 0")
        return ([out(programs[0][0], "wp -1 ENOENT"), out(programs[1][0], "mmap ok")],
                [out(programs[0][0], "wp 0 ok"), out(programs[1][0], "mmap ok")])
    monkeypatch.setattr(session, "run_both", both)

    class Base:
        cell_id = "x86_64.linux-6.1.none.default.qemu"
        st = SimpleNamespace(arch=SimpleNamespace(name="x86_64"))

        def run_batch(self, programs, timeout):
            assert [p for _, p in programs] == [seen[0]]
            return [trace.Outcome(programs[0][0], {"o0": "mmap ok", "o1": "wp -1 ENOENT"},
                                  end="exit 0")]
    session.attribute([needs_no_move, needs_move], Base(), [], 10, lambda m: None,
                      sides=("a", "b"))
    assert [o.kind for o in seen[0].ops] == ["mmap", "wp"]
    assert needs_no_move.attribution["to"] == "base"
    assert "without its moves" in needs_no_move.attribution["why"]
    assert needs_move.attribution["to"] == "undetermined"


def test_a_base_kernel_that_does_not_come_up_leaves_the_divergences_undetermined(
        monkeypatch, tmp_path):
    """The base check is extra: a base that fails to build or boot does not turn what
    the fuzzing found into an infrastructure error; every machine goes down."""
    closed = []
    g = _group("o1", "wp -1 ENOENT", "wp 0 ok", [("mmap", (0, 1, 0)), ("wp", (0, 0, 1, 1))])

    class FakeSide:
        def __init__(self, name, run, say):
            self.name = name
            self.st = SimpleNamespace(stages=[1])
            self.boots = self.crashes = self.hangs = 0
            self.seconds = 0.0
            self.cell_id = name

        def up(self):
            if self.name == "base":
                raise InfraError("build failed")

        def cell(self):
            return None

        def close(self):
            closed.append(self.name)

    class FakeFuzz:
        def __init__(self, a, b, ar, *args):
            self.ar = ar

        def run(self, seed):
            self.ar.groups[g.signature] = g
            return self.ar

    monkeypatch.setattr(session, "Side", FakeSide)
    monkeypatch.setattr(session, "Run", lambda opts: None)
    monkeypatch.setattr(session, "side_options", lambda *a: None)
    monkeypatch.setattr(session, "probe", lambda a, b, t: {})
    monkeypatch.setattr(session, "ArchFuzz", FakeFuzz)
    monkeypatch.setattr(session, "finish_group", lambda *a: None)
    cfg = session.Config(base=SimpleNamespace(tree="t", series="s"), against="r",
                         against_series="none", out=tmp_path, seed=1)
    rep = session.fuzz_arch(cfg, SimpleNamespace(name="x86_64"), lambda m: None, [])
    assert rep.run.error == "" and rep.exit_code == 1
    assert g.attribution == {"to": "undetermined", "why": "the base kernel: build failed"}
    assert sorted(closed) == ["base", "prototype", "reference"]
