"""The fuzz loop for one arch: the seed's programs (strategies.stream) in batches on both
kernels at once, each program's outcomes compared (diff.py), divergences grouped by
signature, until the budget (seconds or programs) is spent.

The stream's index of a program is its identity: shrink.py replays the stream up to it.
A program already run (Hypothesis repeats small ones) is not run again.

Guidance plugs in at `Hooks.after_batch`: given a batch of programs and what they reached,
it says which the corpus keeps; the stream mutates kept programs (see `Hooks`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from orchestrator.base import signals
from orchestrator.fuzz import allowlist as allowmod
from orchestrator.fuzz import diff, strategies, trace
from orchestrator.fuzz.machines import Side, run_both
from orchestrator.fuzz.model import Program


@dataclass
class Hooks:
    """Where guidance plugs in. `after_batch(side_a, side_b, programs)` runs after each
    batch on both kernels and returns, per program id, whether the corpus keeps the program
    (it reached lines of the series that no earlier program reached: guide.py's coverage
    hook, `orch fuzz --coverage`). A kept program is visible to the stream from the next
    program drawn on (strategies.Corpus): half of the sequential programs are then
    mutations of kept ones. The default keeps nothing and reads nothing: the seed's
    programs are those of an unguided run. `guides`: the stream draws mutations (of kept
    programs, once there are some); a guided run's programs differ from an unguided one's
    from the start (strategies.programs)."""

    after_batch: Callable[[Side, Side, list[tuple[str, Program]]], dict[str, bool]] = \
        lambda a, b, programs: {}
    guides: bool = False


@dataclass
class Group:
    """The programs that diverge with one signature, on one arch."""

    arch: str
    signature: str
    index: int  # the stream index of the first such program (shrink.py replays to it)
    program: Program
    verdict: diff.Verdict
    outcomes: tuple[trace.Outcome, trace.Outcome]
    found_after: float  # seconds of fuzzing on this arch before it was first seen
    pids: list[str] = field(default_factory=list)
    minimized: Program | None = None
    min_verdict: diff.Verdict | None = None
    min_outcomes: tuple[trace.Outcome, trace.Outcome] | None = None
    shrink: dict = field(default_factory=dict)  # seconds, runs, sizes, why not
    repro: dict = field(default_factory=dict)  # path, verified exit codes
    # Its program run again on both kernels diverged the same way (True), did not (False:
    # a one-off so far, not counted as a failure), or was not rerun (None: the concurrent
    # errno signatures, which are over the whole run).
    reproduced: bool | None = None
    # Whose difference it is, measured on the prototype's tree without its series
    # (attribution.attribute): {"to": "base" | "series" | "undetermined", "why": ...}. A
    # difference the base kernel shows too is not the series': recorded, not a failure.
    attribution: dict = field(default_factory=dict)

    @property
    def counts(self) -> bool:
        """Whether it fails the run: reproduced (or not rerun) and not the base's."""
        return self.reproduced is not False and self.attribution.get("to") != "base"

    @property
    def status(self) -> tuple[str, str]:
        """Its testcase's status, and what its message starts with."""
        if self.reproduced is False:
            return "skip", "not reproduced: "
        if not self.counts:
            return "skip", f"a difference of the base kernel, not the series " \
                           f"({self.attribution['why']}): "
        return "fail", ""


@dataclass
class ArchRun:
    arch: str
    seed: int
    groups: dict[str, Group] = field(default_factory=dict)
    programs: int = 0  # distinct programs run on both kernels
    generated: int = 0  # drawn from the stream (with repeats)
    agreed: int = 0
    diverged: int = 0  # programs (each in the group of every signature it has)
    not_comparable: int = 0
    unusable: Counter = field(default_factory=Counter)  # why not: "end A / end B" -> programs
    both: Counter = field(default_factory=Counter)  # crashes/hangs on both sides
    allowed: Counter = field(default_factory=Counter)
    kept: list[str] = field(default_factory=list)  # what a guidance hook kept
    # The kept programs and the stream index each is visible from (shrink.py replays it)
    corpus: strategies.Corpus | None = None
    reruns: int = 0  # programs run again to confirm a signature
    # VMA layouts (the seed's question): programs compared, those whose maps differed at
    # some checkpoint, and the VMAs at the end on A minus on B -> programs
    layouts: dict = field(default_factory=lambda: {"programs": 0, "differ": 0,
                                                   "extra_vmas": Counter()})
    # concurrent operations: label -> [errnos on A, errnos on B, {errno: (index, program)}]
    errnos: dict[str, list] = field(default_factory=dict)
    seconds: float = 0.0
    batches: int = 0
    error: str = ""
    # What each kernel can do, measured on it before fuzzing (session.probe): feature ->
    # {"prototype": bool, "reference": bool}. A feature one kernel lacks is not generated.
    features: dict[str, dict[str, bool]] = field(default_factory=dict)

    @property
    def wp(self) -> bool:
        """Whether programs may use uffd write-protect: both kernels have it (or it was
        not measured)."""
        return all(self.features.get("uffd_wp", {}).values())

    def rate(self) -> float:
        return self.programs / self.seconds if self.seconds else 0.0


def publish(corpus: strategies.Corpus | None, index: int, kept: list[Program]) -> None:
    """The programs a batch kept, visible to the stream from `index` on (a guided run)."""
    for p in kept if corpus is not None else []:
        corpus.add(index, p)


class _Abort(BaseException):
    """Carries an error out of the Hypothesis-driven loop (which must not shrink it)."""

    def __init__(self, exc: BaseException):
        super().__init__(str(exc))
        self.exc = exc


class ArchFuzz:
    def __init__(self, a: Side, b: Side, ar: ArchRun, allow: list[allowmod.Entry],
                 seconds: float | None, programs: int | None, batch: int, timeout: float,
                 say: Callable[[str], None], hooks: Hooks | None = None,
                 concurrent_share: int = 10):
        self.a, self.b, self.ar, self.allow = a, b, ar, allow
        self.seconds, self.limit, self.batch_size, self.timeout = seconds, programs, batch, \
            timeout
        self.say, self.hooks = say, hooks or Hooks()
        self.concurrent_share = concurrent_share
        self.batch: list[tuple[int, Program]] = []
        self.pending: tuple | None = None  # the batch in flight: thread, programs, ...
        self.seen: set[str] = set()
        self.start = 0.0
        self.keep: list[Program] = []  # kept by the last batch, visible from the next draw
        if self.hooks.guides and ar.corpus is None:
            ar.corpus = strategies.Corpus()

    def exhausted(self) -> bool:
        pending = len(self.pending[1]) if self.pending else 0
        if self.limit is not None and \
                self.ar.programs + pending + len(self.batch) >= self.limit:
            return True
        return self.seconds is not None and time.monotonic() - self.start >= self.seconds

    def consume(self, program: Program) -> None:
        try:
            signals.check()
        except BaseException as exc:  # noqa: BLE001 - out of Hypothesis as it is
            raise _Abort(exc) from None
        index = self.ar.generated
        self.ar.generated += 1
        body = program.body()
        if body not in self.seen:
            self.seen.add(body)
            self.batch.append((index, program))
        try:
            if len(self.batch) >= self.batch_size or self.exhausted():
                self.flush()
        except BaseException as exc:  # noqa: BLE001 - out of Hypothesis unshrunk
            raise _Abort(exc) from None
        if self.exhausted():
            raise strategies.Stop()
        if self.ar.corpus is not None:  # what the next program drawn may mutate
            self.ar.corpus.at = self.ar.generated

    def flush(self) -> None:
        """Start the batch on both kernels, in a thread, once the previous one is done:
        Hypothesis draws the next batch meanwhile (the guests wait on SSH, not the GIL)."""
        self.finish()
        publish(self.ar.corpus, self.ar.generated, self.keep)
        self.keep = []
        if not self.batch:
            return
        progs = [(str(i), p) for i, p in self.batch]
        index = {str(i): i for i, _ in self.batch}
        self.batch = []
        holder: dict = {}

        def work() -> None:
            try:
                holder["outs"] = run_both(self.a, self.b, progs, self.timeout)
            except BaseException as exc:  # noqa: BLE001 - raised by finish()
                holder["error"] = exc

        t = threading.Thread(target=work, name="fuzz-batch")
        t.start()
        self.pending = (t, progs, index, holder)

    def finish(self) -> None:
        """Wait for the batch in flight and record its programs' verdicts."""
        if self.pending is None:
            return
        t, progs, index, holder = self.pending
        self.pending = None
        t.join()
        if "error" in holder:
            raise holder["error"]
        outs_a, outs_b = holder["outs"]
        elapsed = time.monotonic() - self.start
        unconfirmed: dict[str, tuple] = {}
        for (pid, p), oa, ob in zip(progs, outs_a, outs_b, strict=True):
            v = diff.compare(oa, ob, p, self.allow)
            self.record(index[pid], p, v, (oa, ob), elapsed)
            for sig in diff.event_signatures(v, p) if v.diverged and v.comparable else []:
                g = self.ar.groups.get(sig)
                if g is not None and not g.reproduced and sig not in unconfirmed:
                    unconfirmed[sig] = (index[pid], pid, p, diff.focus(v, sig, p), (oa, ob))
        self.confirm(unconfirmed)
        kept = self.hooks.after_batch(self.a, self.b, progs)
        self.ar.kept += [pid for pid, _ in progs if kept.get(pid)]
        self.keep += [p for pid, p in progs if kept.get(pid)]
        self.ar.programs += len(progs)
        self.ar.batches += 1
        self.ar.seconds = elapsed
        self.say(f"[{self.ar.arch}] fuzz: {self.ar.programs} programs "
                 f"({self.ar.rate():.1f}/s), {self.ar.diverged}"
                 f" diverging in {len(self.ar.groups)} signature(s), "
                 f"{self.a.crashes + self.b.crashes} crash(es)"
                 + (f", {self.ar.not_comparable} not compared (fuzz.json says why)"
                    if self.ar.not_comparable else ""))

    def record(self, index: int, p: Program, v: diff.Verdict,
               outs: tuple[trace.Outcome, trace.Outcome], elapsed: float) -> None:
        ar = self.ar
        ar.allowed.update(v.allowed)
        for label, (ea, eb) in v.errnos.items():
            agg = ar.errnos.setdefault(label, [set(), set(), {}])
            agg[0] |= ea
            agg[1] |= eb
            for e in ea ^ eb:
                agg[2].setdefault(e, (index, p))
        if not v.comparable:
            ar.not_comparable += 1
            ar.unusable[f"{outs[0].end or 'none'} / {outs[1].end or 'none'}"] += 1
            return
        self.layout(*outs)
        if v.both:
            ar.both[v.both] += 1
        if not v.diverged:
            ar.agreed += 1
            return
        ar.diverged += 1
        # Every event's signature of the program, not only its first: a program that first
        # differs by a known difference of the base can differ by the series' own later.
        for sig in diff.event_signatures(v, p):
            g = ar.groups.get(sig)
            if g is None:
                g = ar.groups[sig] = Group(ar.arch, sig, index, p, diff.focus(v, sig, p),
                                           outs, round(elapsed, 1))
                self.say(f"[{ar.arch}] divergence: {sig} (program {v.pid})")
            g.pids.append(v.pid)

    def confirm(self, unconfirmed: dict[str, tuple]) -> None:
        """Run the first program of each signature not reproduced yet again, all in one
        batch: a divergence that comes back is `reproduced` and that program stands for
        its group (shrink.py replays to it); one that does not stays `reproduced: False`
        until a later program with its signature comes back."""
        if not unconfirmed:
            return
        progs = [(f"r{pid}", p) for _, pid, p, _, _ in unconfirmed.values()]
        outs_a, outs_b = run_both(self.a, self.b, progs, self.timeout)
        self.ar.reruns += len(progs)
        for (sig, (index, pid, p, v, outs)), oa, ob in zip(unconfirmed.items(), outs_a,
                                                           outs_b, strict=True):
            g = self.ar.groups[sig]
            again = diff.compare(oa, ob, p, self.allow)
            if sig not in again.signatures:
                g.reproduced = False
                self.say(f"[{self.ar.arch}] not reproduced: {sig} (program {pid} run "
                         f"again agreed or diverged otherwise)")
                continue
            g.reproduced = True
            g.index, g.program, g.verdict, g.outcomes = index, p, v, outs

    def layout(self, a: trace.Outcome, b: trace.Outcome) -> None:
        keys = [k for k in {**a.records, **b.records} if k.endswith(".maps")]
        if "cend.maps" not in a.records or "cend.maps" not in b.records:
            return
        lay = self.ar.layouts
        lay["programs"] += 1
        if any(a.records.get(k) != b.records.get(k) for k in keys):
            lay["differ"] += 1
            extra = len(trace.vmas(a.records["cend.maps"])) - \
                len(trace.vmas(b.records["cend.maps"]))
            lay["extra_vmas"][extra] += 1

    def run(self, seed: int) -> ArchRun:
        self.start = time.monotonic()
        try:
            strategies.stream(seed, self.consume,
                              strategies.programs(self.concurrent_share, self.ar.wp,
                                                  self.ar.corpus))
        except _Abort as exc:
            raise exc.exc from None
        finally:
            if self.pending is not None:  # an error or an interrupt: nothing left running
                self.pending[0].join()
        self.flush()
        self.finish()
        self.ar.seconds = time.monotonic() - self.start
        self.concurrent_divergences()
        return self.ar

    def concurrent_divergences(self) -> None:
        """Errnos a concurrent operation gave on one kernel and never on the other, over
        the whole run: interleavings differ, so one program proves nothing."""
        for label, (ea, eb, first) in self.ar.errnos.items():
            for e in sorted(ea - eb) + sorted(eb - ea):
                side = diff.SIDES[0] if e in ea else diff.SIDES[1]
                sig = f"concurrent {label}: {e} only on {side}"
                index, program = first.get(e, (-1, Program(())))
                pid = str(index)
                v = diff.Verdict(pid, signature=sig, differences=[diff.Difference(
                    "thread", "thread", e if e in ea else None, e if e in eb else None)])
                g = Group(self.ar.arch, sig, index, program, v,
                          (trace.Outcome(pid), trace.Outcome(pid)), 0.0, [pid])
                g.shrink = {"skipped": "interleaving-dependent: not shrunk"}
                self.ar.groups[sig] = g
