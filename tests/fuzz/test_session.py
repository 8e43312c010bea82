"""A whole arch's fuzzing (session.py) around sides that fail: both machines go down."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.base.errors import InfraError, UsageError
from orchestrator.fuzz import attribution, diff, session, trace
from orchestrator.fuzz.engine import ArchRun, Group
from orchestrator.fuzz.model import Op, Program
from orchestrator.fuzz.report import ArchReport, group_case


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
    monkeypatch.setattr(session, "side_options", lambda *a, **kw: None)
    cfg = session.Config(base=SimpleNamespace(tree="t", series="s", coverage=None),
                         against="r",
                         against_series="none", out=tmp_path, seed=1)
    with pytest.raises(InfraError, match="qemu would not stop"):
        session.fuzz_arch(cfg, SimpleNamespace(name="x86_64"), lambda m: None, [])
    assert closed == ["prototype", "reference"]


def test_the_wp_probe_finds_the_kernel_without_uffd_wp(monkeypatch):
    """The probe's outcomes, as 6.1 and 6.12 give them on arm64: the prototype's wp
    registration is EINVAL, so programs use no wp."""
    def both(a, b, programs, timeout):
        assert programs == [("probe-wp", session.WP_PROBE)]
        def mk(rec):
            return [trace.Outcome("probe-wp", {"o0": "mmap ok", "o1": rec}, end="exit 0")]
        return mk("ureg -1 EINVAL"), mk("ureg 0 ok ioctls=0x17c")
    monkeypatch.setattr(session, "run_both", both)
    sides = (SimpleNamespace(name="prototype"), SimpleNamespace(name="reference"))
    features = session.probe(*sides, 10)
    assert features == {"uffd_wp": {"prototype": False, "reference": True}}
    ar = ArchRun("arm64", 1)
    assert ar.wp
    ar.features = features
    assert not ar.wp


def test_a_probe_that_does_not_run_through_is_infrastructure(monkeypatch):
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


def _group(sig_key: str, proto: str, ref: str, ops, minimized=None):
    """A reproduced divergence of one record; `minimized`: ops of its minimized program
    (the same records)."""
    program = Program(tuple(Op(k, a) for k, a in ops))
    oa = trace.Outcome("1", {"o0": "mmap ok", sig_key: proto}, end="exit 0")
    ob = trace.Outcome("1", {"o0": "mmap ok", sig_key: ref}, end="exit 0")
    v = diff.compare(oa, ob, program, [])
    assert v.diverged
    g = Group("x86_64", v.signature, 1, program, v, (oa, ob), 1.0, ["1"], reproduced=True)
    if minimized:
        g.minimized, g.min_verdict = Program(tuple(Op(k, a) for k, a in minimized)), v
        g.min_outcomes = (oa, ob)
    return g


class Base:
    """The base kernel's side: what each program's record `o1` is there (by its first
    operation after the mmap), every run alike."""

    cell_id = "x86_64.linux-6.1.none.default.qemu"
    st = SimpleNamespace(arch=SimpleNamespace(name="x86_64"))

    def __init__(self, answers, ends=None):
        self.answers, self.ends, self.ran = answers, ends or {}, []

    def run_batch(self, programs, timeout):
        self.ran += [p for _, p in programs]
        return [trace.Outcome(pid, {"o0": "mmap ok", "o1": self.answers[p.ops[1].kind]},
                              end=self.ends.get(p.ops[1].kind, "exit 0"))
                for pid, p in programs]


MM, MOVE = ("mmap", (0, 1, 0)), ("move", (0, 0, 0, 0, 1, 0, 0))


class Answers(Base):
    """A base kernel whose every run of every program gives these records."""

    def __init__(self, records):
        super().__init__({})
        self.records = records

    def run_batch(self, programs, timeout):
        self.ran += [p for _, p in programs]
        return [trace.Outcome(pid, dict(self.records), end="exit 0") for pid, _ in programs]


def test_a_divergence_is_attributed_by_running_it_on_the_base_kernel():
    """The base kernel (the prototype's tree without its series) runs each divergence's
    programs twice: like the prototype every time -> the base's (not a failure); like the
    reference -> the series'; otherwise undetermined, saying what it did."""
    base_like_proto = _group("o1", "wp -1 ENOENT", "wp 0 ok", [MM, ("wp", (0, 0, 1, 1))])
    base_like_ref = _group("o1", "madv -1 EINVAL", "madv 0 ok",
                           [MM, ("madv", (0, 0, 1, "cold"))])
    neither = _group("o1", "mprot -1 EINVAL", "mprot 0 ok", [MM, ("mprot", (0, 0, 1, "r"))])
    crashed = _group("o1", "munmap -1 EINVAL", "munmap 0 ok", [MM, ("munmap", (0, 0, 1))])
    base = Base({"wp": "wp -1 ENOENT", "madv": "madv 0 ok", "mprot": "mprot -1 EPERM",
                 "munmap": "munmap 0 ok"}, ends={"munmap": "crash"})
    groups = [base_like_proto, base_like_ref, neither, crashed]
    attribution.attribute(groups, base, [], 10, lambda m: None)
    assert base.ran == [g.program for g in groups for _ in range(2)]
    assert [g.attribution["to"] for g in groups] == ["base", "series", "undetermined",
                                                      "undetermined"]
    assert neither.attribution["why"].endswith("run 2 times: as neither")
    assert crashed.attribution["why"].endswith("run 2 times: ended crash")
    assert [g.counts for g in groups] == [False, True, True, True]
    ar = ArchRun("x86_64", 1, groups={"a": base_like_proto})
    assert ArchReport("x86_64", ar).exit_code == 0  # the base's only: the run passes
    ar.groups["b"] = base_like_ref
    assert ArchReport("x86_64", ar).exit_code == 1
    t = group_case("c", base_like_proto, Path("/tmp"))
    assert t.status == "skip" and t.message.startswith(
        "a difference of the base kernel, not the series (x86_64.linux-6.1.none.default.qemu "
        "differs from the reference the same way)")
    assert group_case("c", base_like_ref, Path("/tmp")).status == "fail"


def test_a_divergence_whose_programs_move_pages_is_never_the_bases():
    """The base has no UFFDIO_MOVE: a group whose programs all move is undetermined; one
    whose minimized program does not move but whose first program does is at most
    "base?", which still fails the run (a series bug may share a signature with a base
    difference, and the shrinker keeps any program with the signature)."""
    all_move = _group("o1", "move -1 EBUSY", "move 0 ok", [MM, MOVE])
    first_moves = _group("o1", "wp -1 ENOENT", "wp 0 ok", [MM, ("wp", (0, 0, 1, 1)), MOVE],
                         minimized=[MM, ("wp", (0, 0, 1, 1))])
    base = Base({"wp": "wp -1 ENOENT"})
    attribution.attribute([all_move, first_moves], base, [], 10, lambda m: None)
    assert base.ran == [first_moves.minimized] * 2
    assert all_move.attribution["to"] == "undetermined" and \
        "no UFFDIO_MOVE" in all_move.attribution["why"]
    assert first_moves.attribution["to"] == "base?"
    assert all_move.counts and first_moves.counts


def test_a_base_kernel_that_does_not_come_up_leaves_the_divergences_undetermined(
        monkeypatch, tmp_path):
    """The base check is extra: a base that fails to build or boot (or a usage error of
    its own) does not turn what the fuzzing found into an error; every machine goes down,
    the prototype and the reference before the base comes up."""
    events = []
    g = _group("o1", "wp -1 ENOENT", "wp 0 ok", [MM, ("wp", (0, 0, 1, 1))])

    class FakeSide:
        def __init__(self, name, run, say):
            self.name = name
            self.st = SimpleNamespace(stages=[])
            self.boots = self.crashes = self.hangs = 0
            self.seconds = 0.0
            self.cell_id = name

        def up(self):
            events.append(f"up {self.name}")
            if self.name == "base":
                raise UsageError("no such config")

        def cell(self):
            return None

        def close(self):
            events.append(f"close {self.name}")

    class FakeFuzz:
        def __init__(self, a, b, ar, *args):
            self.ar = ar

        def run(self, seed):
            self.ar.groups[g.signature] = g
            return self.ar

    monkeypatch.setattr(session, "Side", FakeSide)
    monkeypatch.setattr(session, "Run", lambda opts: None)
    monkeypatch.setattr(session, "side_options", lambda *a, **kw: None)
    monkeypatch.setattr(session, "probe", lambda a, b, t: {})
    monkeypatch.setattr(session, "ArchFuzz", FakeFuzz)
    monkeypatch.setattr(session, "finish_group", lambda *a: None)
    cfg = session.Config(base=SimpleNamespace(tree="t", series="s", coverage=None),
                         against="r",
                         against_series="none", out=tmp_path, seed=1)
    reports = []
    rep = session.fuzz_arch(cfg, SimpleNamespace(name="x86_64"), lambda m: None, reports)
    assert reports == [rep] and rep.run.error == "" and rep.exit_code == 1
    assert g.attribution == {"to": "undetermined", "why": "the base kernel: no such config"}
    assert events.index("up base") > max(events.index("close prototype"),
                                         events.index("close reference"))
    assert events[-1] == "close base" or "close base" in events


def test_the_base_is_not_checked_where_it_is_the_reference():
    b = SimpleNamespace(tree="linux-6.1", series="patches/x")
    mk = lambda **k: session.Config(base=b, against="linux-6.12", against_series="none",  # noqa: E731
                                    out=Path("/tmp"), seed=1, **k)
    assert session.base_needed(mk())
    assert not session.base_needed(mk(base_check=False))
    same = session.Config(base=b, against="linux-6.1", against_series="none",
                          out=Path("/tmp"), seed=1)
    assert not session.base_needed(same)
    assert not session.base_needed(session.Config(
        base=SimpleNamespace(tree="linux-6.1", series="none"), against="linux-6.12",
        against_series="none", out=Path("/tmp"), seed=1))


def test_a_kernel_without_uffd_wp_reaches_the_fuzzing_and_the_shrinking(monkeypatch, tmp_path):
    """What the probe measured decides the programs of both the fuzz loop and the shrinker
    (which replays the same stream): a dropped flag would make the replay reach another
    program, on arm64 only."""
    seen = {}
    g = _group("o1", "madv -1 EINVAL", "madv 0 ok", [MM, ("madv", (0, 0, 1, "cold"))])

    class FakeSide:
        def __init__(self, name, run, say):
            self.name, self.st, self.cell_id = name, SimpleNamespace(stages=[]), name
            self.boots = self.crashes = self.hangs = 0
            self.seconds = 0.0

        def up(self):
            pass

        def cell(self):
            return None

        def close(self):
            pass

    class FakeFuzz:
        def __init__(self, a, b, ar, *args):
            self.ar = ar

        def run(self, seed):
            seen["fuzz"] = self.ar.wp
            self.ar.groups[g.signature] = g
            return self.ar

    monkeypatch.setattr(session, "Side", FakeSide)
    monkeypatch.setattr(session, "Run", lambda opts: None)
    monkeypatch.setattr(session, "side_options", lambda *a, **kw: None)
    monkeypatch.setattr(session, "probe", lambda a, b, t: {
        "uffd_wp": {"prototype": False, "reference": True}})
    monkeypatch.setattr(session, "ArchFuzz", FakeFuzz)
    monkeypatch.setattr(session, "finish_group",
                        lambda *a: seen.setdefault("shrink", a[6]))
    cfg = session.Config(base=SimpleNamespace(tree="t", series="s", coverage=None),
                         against="r",
                         against_series="none", out=tmp_path, seed=1, base_check=False)
    session.fuzz_arch(cfg, SimpleNamespace(name="arm64"), lambda m: None, [])
    assert seen == {"fuzz": False, "shrink": False}


def test_a_base_that_ran_the_program_otherwise_before_the_divergence_says_nothing():
    """A base that answered an earlier operation otherwise (bare 6.1 once refused the
    userfaultfd the executor asked for, so every registration failed, and the VMA layout
    after an unregister came out as the reference's by accident) did not reach the state
    the divergence is about: undetermined, never "series" or "base"."""
    g = _group("o2", "madv -1 EINVAL", "madv 0 ok",
               [MM, ("ureg", (0, 0, 1, "m")), ("madv", (0, 0, 1, "cold"))])
    g.outcomes[0].records["o1"] = g.outcomes[1].records["o1"] = "ureg 0 ok ioctls=0x13c"
    g.verdict = diff.compare(*g.outcomes, g.program, [])

    class RefusingBase(Base):
        def run_batch(self, programs, timeout):
            return [trace.Outcome(pid, {"o0": "mmap ok", "o1": "ureg -1 EINVAL",
                                        "o2": "madv 0 ok"}, end="exit 0")
                    for pid, _ in programs]
    attribution.attribute([g], RefusingBase({}), [], 10, lambda m: None)
    assert g.attribution["to"] == "undetermined"
    assert "ran it otherwise before the divergence (o1: 'ureg -1 EINVAL', both kernels " \
        "'ureg 0 ok ioctls=0x13c')" in g.attribution["why"]


def test_a_move_that_moved_nothing_on_either_kernel_does_not_stop_the_base_check():
    """A move that failed on both kernels, having moved nothing, left the program's memory
    as it was: the base runs the program, where the move fails too (it has no
    UFFDIO_MOVE: another errno, which is not held against it); a move that moved pages on
    either kernel still makes the group undetermined."""
    WP = ("wp", (0, 0, 1, 1))

    def group(move_a, move_b):
        program = Program(tuple(Op(k, a) for k, a in [MM, MOVE, WP]))
        oa = trace.Outcome("1", {"o0": "mmap ok", "o1": move_a, "o2": "wp -1 ENOENT"},
                           end="exit 0")
        ob = trace.Outcome("1", {"o0": "mmap ok", "o1": move_b, "o2": "wp 0 ok"},
                           end="exit 0")
        v = diff.compare(oa, ob, program, [])
        return Group("x86_64", v.signature, 1, program, v, (oa, ob), 1.0, ["1"],
                     reproduced=True)

    failed = group("move -1 EINVAL move=-22", "move -1 EINVAL move=-22")
    moved = group("move 0 ok move=4096", "move 0 ok move=4096")
    # the kernels differ in the move's own answer: the base's (no such ioctl, the same
    # EINVAL as the prototype's early rejection) says nothing about it
    on_the_move = group("move -1 EINVAL move=unset", "move -1 ENOENT move=-2")

    base = Answers({"o0": "mmap ok", "o1": "move -1 EINVAL move=unset", "o2": "wp -1 ENOENT"})
    attribution.attribute([failed, moved, on_the_move], base, [], 10, lambda m: None)
    assert base.ran == [failed.program] * 2
    assert failed.attribution["to"] == "base" and \
        "moved nothing on either kernel" in failed.attribution["why"]
    assert not failed.counts
    assert moved.attribution["to"] == "undetermined"
    assert on_the_move.attribution["to"] == "undetermined" and on_the_move.counts


def test_the_base_registers_without_the_move_ioctl_and_is_not_held_to_it():
    """The base kernel's UFFDIO_REGISTER offers no UFFDIO_MOVE (bit 5 of `ioctls`): a
    registration before the divergence that differs only there does not make its run say
    nothing (measured: every group of the pgoff slow test was undetermined without it)."""
    assert attribution._base_alike("o3", "ureg 0 ok ioctls=0x1c", "ureg 0 ok ioctls=0x3c", set())
    assert not attribution._base_alike("o3", "ureg 0 ok ioctls=0x1c", "ureg 0 ok ioctls=0x1d",
                                   set())
    assert not attribution._base_alike("o3", "ureg -1 EINVAL", "ureg 0 ok ioctls=0x3c", set())
    assert attribution._base_alike("o1", "move -1 EINVAL move=unset", "move -1 ENOENT move=-2",
                               {"o1"})
    WP = ("wp", (0, 0, 1, 1))
    program = Program(tuple(Op(k, a) for k, a in [MM, ("ureg", (0, 0, 1, "m")), WP]))
    oa = trace.Outcome("1", {"o0": "mmap ok", "o1": "ureg 0 ok ioctls=0x3c",
                             "o2": "wp -1 ENOENT"}, end="exit 0")
    ob = trace.Outcome("1", {"o0": "mmap ok", "o1": "ureg 0 ok ioctls=0x3c", "o2": "wp 0 ok"},
                       end="exit 0")
    v = diff.compare(oa, ob, program, [])
    g = Group("x86_64", v.signature, 1, program, v, (oa, ob), 1.0, ["1"], reproduced=True)

    no_move_ioctl = Answers({"o0": "mmap ok", "o1": "ureg 0 ok ioctls=0x1c",
                             "o2": "wp -1 ENOENT"})
    attribution.attribute([g], no_move_ioctl, [], 10, lambda m: None)
    assert g.attribution["to"] == "base", g.attribution
