"""The fuzz loop with both "kernels" being this host's (the executor in keep-env mode), one
of them made to answer differently: budgets, repeats, grouping by signature, and the index
that the shrinker's replay needs."""

import copy
import subprocess

import pytest

from orchestrator.fuzz import engine, model, trace
from orchestrator.fuzz.engine import ArchFuzz, ArchRun
from tests.fuzz.test_strategies import take, take_guided


class FakeSide:
    def __init__(self, name):
        self.name, self.crashes = name, 0


def pageout(p) -> bool:
    return any(o.kind == "madv" and o.args[3] == "pageout" for o in p.ops)


@pytest.fixture
def host_both(executor, tmp_path, monkeypatch):
    calls: list[int] = []
    changed: list[int] = []

    def run_both(a, b, programs, timeout):
        rerun = programs[0][0].startswith("r")  # a signature's confirmation (engine.confirm)
        if not rerun:
            calls.append(len(programs))
        f = tmp_path / "batch.txt"
        f.write_text(model.batch_text(programs))
        r = subprocess.run([str(executor), "run", str(f), str(timeout), "keep-env"],
                           capture_output=True, text=True, timeout=300)
        outs = trace.parse(r.stdout)
        other = copy.deepcopy(outs)
        for (pid, p), o in zip(programs, other, strict=True):
            for i, op in enumerate(p.ops):  # the "reference" says EBUSY to a pageout
                if op.kind == "madv" and op.args[3] == "pageout" and \
                        o.records.get(f"o{i}") == "madv 0 ok":
                    o.records[f"o{i}"] = "madv -1 EBUSY"
                    if not rerun:
                        changed.append(int(pid))
                    break
        return outs, other
    monkeypatch.setattr(engine, "run_both", run_both)
    return calls, changed


def test_a_budget_of_programs_and_divergences_grouped(host_both):
    ar = ArchRun("x86_64", 9)
    ArchFuzz(FakeSide("prototype"), FakeSide("reference"), ar, [], None, 70, 16, 10,
             say=lambda m: None, concurrent_share=0).run(9)
    calls, changed = host_both
    assert ar.programs == 70 and calls == [16, 16, 16, 16, 6]
    stream = take(9, ar.generated, share=0)
    assert len({p.body() for p in stream}) == 70  # repeats are not run again
    assert changed and set(ar.groups) == {
        "madv pageout: 0 ok on the prototype, -1 EBUSY on the reference"}
    (g,) = ar.groups.values()
    assert sorted(map(int, g.pids)) == sorted(changed)
    assert stream[g.index] == g.program and g.index == min(changed) and g.reproduced
    assert ar.reruns == 1
    assert all(pageout(stream[i]) for i in changed)
    assert ar.agreed == ar.programs - len(changed)
    # both sides the same kernel: every layout the same
    assert ar.layouts["programs"] == ar.programs and ar.layouts["differ"] == 0


def test_a_time_budget_stops_the_stream(host_both):
    ar = ArchRun("x86_64", 4)
    ArchFuzz(FakeSide("prototype"), FakeSide("reference"), ar, [], 0.5, None, 8, 10,
             say=lambda m: None).run(4)
    assert ar.programs >= 8 and ar.seconds < 30


def test_an_error_in_a_batch_comes_out_as_itself(monkeypatch):
    def broken(*a):
        raise RuntimeError("QEMU went away")
    monkeypatch.setattr(engine, "run_both", broken)
    with pytest.raises(RuntimeError, match="QEMU went away"):
        ArchFuzz(FakeSide("a"), FakeSide("b"), ArchRun("x86_64", 1), [], None, 10, 4, 10,
                 say=lambda m: None).run(1)


def test_a_signal_whose_raise_was_lost_still_stops_the_loop(monkeypatch):
    """The first SIGTERM's Interrupted raised inside a gc callback is dropped by Python;
    the loop asks again (seen on a 10-minute run: orch fuzz went on after SIGTERM)."""
    from orchestrator.base import signals
    from orchestrator.base.errors import Interrupted
    monkeypatch.setattr(signals, "_SIGNALLED", [15])
    monkeypatch.setattr(engine, "run_both", lambda *a: pytest.fail("nothing may run"))
    with pytest.raises(Interrupted, match="SIGTERM"):
        ArchFuzz(FakeSide("a"), FakeSide("b"), ArchRun("x86_64", 1), [], None, 10, 4, 10,
                 say=lambda m: None).run(1)


def test_a_new_signature_is_confirmed_by_running_its_first_program_again(monkeypatch):
    """A divergence seen once and not on the rerun (noise: a timing, a guest hiccup) is
    kept as `reproduced: False`; a later program with its signature is rerun in its turn,
    and when that one comes back it stands for the group."""
    runs: list[list[str]] = []
    flaky = {"0"}  # program 0 diverges only on its first run; the others every time

    def run_both(a, b, programs, timeout):
        runs.append([pid for pid, _ in programs])
        outs_a = [trace.Outcome(pid, {"o0": "mmap ok"}, [], "exit 0") for pid, _ in programs]
        outs_b = copy.deepcopy(outs_a)
        for (pid, p), o in zip(programs, outs_b, strict=True):
            if p.ops[0].args[0] != 2 and not (pid.startswith("r") and pid[1:] in flaky):
                o.records["o0"] = "mmap -1 ENOMEM"
        return outs_a, outs_b
    monkeypatch.setattr(engine, "run_both", run_both)
    ps = [model.Program((model.Op("mmap", (i, 1, 0)),)) for i in range(3)]
    af = ArchFuzz(FakeSide("a"), FakeSide("b"), ArchRun("x86_64", 1), [], None, 9, 3, 10,
                  say=lambda m: None)
    af.batch = [(i, p) for i, p in enumerate(ps)]
    af.flush()
    af.finish()
    (g,) = af.ar.groups.values()
    assert runs == [["0", "1", "2"], ["r0"]]  # one rerun per signature and batch
    assert g.reproduced is False and g.pids == ["0", "1"] and g.index == 0
    af.batch = [(5, ps[1])]
    af.flush()
    af.finish()
    assert runs[2:] == [["5"], ["r5"]]
    assert g.reproduced is True and g.index == 5 and g.program == ps[1]
    assert g.pids == ["0", "1", "5"] and g.outcomes[1].records["o0"] == "mmap -1 ENOMEM"
    af.batch = [(6, ps[0])]
    af.flush()
    af.finish()
    assert runs[4:] == [["6"]]  # reproduced: no more reruns


def test_a_program_stands_in_the_group_of_every_signature_it_has(monkeypatch):
    """A program that first differs by one thing (a known difference of the base, say)
    and later by another (the series' own) is in both groups, each with its own
    differences: a bug of the series is not hidden behind the first signature of the
    programs it shows in (a planted-bug run of this stop had every signature of the clean
    run and nothing of its own)."""
    def run_both(a, b, programs, timeout):
        outs_a = [trace.Outcome(pid, {"o0": "mmap ok", "o1": "madv 0 ok"}, [], "exit 0")
                  for pid, _ in programs]
        outs_b = copy.deepcopy(outs_a)
        for (_pid, p), o in zip(programs, outs_b, strict=True):
            o.records["o0"] = "mmap -1 ENOMEM"  # every program: the "base" difference
            if p.ops[1].args[0] == 1:  # and some: the "series'" one, later
                o.records["o1"] = "madv -1 EBUSY"
        return outs_a, outs_b
    monkeypatch.setattr(engine, "run_both", run_both)
    ps = [model.Program((model.Op("mmap", (i, 1, 0)),
                         model.Op("madv", (i % 2, 0, 1, "cold"))))
          for i in range(4)]
    af = ArchFuzz(FakeSide("a"), FakeSide("b"), ArchRun("x86_64", 1), [], None, 9, 4, 10,
                  say=lambda m: None)
    af.batch = [(i, p) for i, p in enumerate(ps)]
    af.flush()
    af.finish()
    groups = af.ar.groups
    assert set(groups) == {"mmap: ok on the prototype, -1 ENOMEM on the reference",
                           "madv cold: 0 ok on the prototype, -1 EBUSY on the reference"}
    first, later = groups.values()
    assert first.pids == ["0", "1", "2", "3"] and later.pids == ["1", "3"]
    assert [d.key for d in later.verdict.differences] == ["o1"]
    assert later.verdict.signature == later.signature and later.reproduced
    assert af.ar.diverged == 4


def test_a_kept_program_is_mutated_and_a_replay_draws_the_same_programs(monkeypatch):
    """A guidance hook keeps a program: the programs drawn after the next batch mutate it,
    and the stream replayed with the run's corpus (as shrink.py does) gives the programs
    the run ran, in order."""
    ran = []

    def run_both(a, b, programs, timeout):
        ran.extend(p for pid, p in programs if not pid.startswith("r"))
        outs = [trace.Outcome(pid, end="exit 0") for pid, _ in programs]
        return outs, copy.deepcopy(outs)
    monkeypatch.setattr(engine, "run_both", run_both)
    kept = {}

    def after_batch(a, b, progs):
        if kept:
            return {}
        kept[progs[0][0]] = progs[0][1]
        return {progs[0][0]: True}
    ar = ArchRun("x86_64", 5)
    ArchFuzz(FakeSide("prototype"), FakeSide("reference"), ar, [], None, 160, 16, 10,
             say=lambda m: None, hooks=engine.Hooks(after_batch=after_batch, guides=True),
             concurrent_share=0).run(5)
    (pid, program), = kept.items()
    (index, kept_program), = ar.corpus.entries
    assert ar.kept == [pid] and kept_program == program and index >= 32  # (with repeats)
    replay, seen = [], set()
    for p in take_guided(5, ar.generated, ar.corpus.entries, share=0):
        if p.body() not in seen:
            seen.add(p.body())
            replay.append(p)
    assert [p.body() for p in ran] == [p.body() for p in replay]
    mutants = [p for p in ran[index:] if len(set(p.ops) & set(program.ops)) * 2 >=
               len(program.ops)]
    assert len(mutants) > 30, len(mutants)
