"""Shrinking a divergence with Hypothesis's own shrinker, on both kernels.

Hypothesis shrinks what it generated itself, so the seed's stream is replayed (same seed,
same strategy, same settings: the same programs in the same order, strategies.py) and the
test fails at the diverging program's index without running it. From there Hypothesis
shrinks: each candidate (fewer operations, smaller numbers) runs on both kernels, and
"fails" when it diverges with the same signature (first or among its others). The last
candidate that did is the minimized program. Results are cached by program text, so
Hypothesis's final replay of the minimal example costs nothing, and the shrink stops at its
time budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from hypothesis import Phase, given, seed
from hypothesis.errors import Flaky

from orchestrator.base import signals
from orchestrator.fuzz import allowlist as allowmod
from orchestrator.fuzz import diff, strategies, trace
from orchestrator.fuzz.engine import Group
from orchestrator.fuzz.machines import Side, run_both
from orchestrator.fuzz.model import Program


class _Diverges(AssertionError):
    """The candidate diverges with the signature: a failing example for Hypothesis."""


def _diverges() -> None:
    """One place that fails: Hypothesis tells failures apart by where they are raised, and
    the replayed program and its shrunk forms must be the same failure."""
    raise _Diverges()


class _Done(BaseException):
    """Out of time, or an error to carry out of Hypothesis."""

    def __init__(self, exc: BaseException | None = None):
        super().__init__(str(exc or "done"))
        self.exc = exc


@dataclass
class Evaluate:
    """Runs candidates on both kernels (cached by program text)."""

    a: Side
    b: Side
    allow: list[allowmod.Entry]
    timeout: float
    runs: int = 0

    def __post_init__(self) -> None:
        self.cache: dict[str, tuple[diff.Verdict, tuple[trace.Outcome, trace.Outcome]]] = {}

    def __call__(self, program: Program) -> tuple[diff.Verdict,
                                                  tuple[trace.Outcome, trace.Outcome]]:
        body = program.body()
        if body not in self.cache:
            self.runs += 1
            pid = f"s{self.runs}"
            oa, ob = run_both(self.a, self.b, [(pid, program)], self.timeout)
            self.cache[body] = (diff.compare(oa[0], ob[0], program, self.allow),
                                (oa[0], ob[0]))
        return self.cache[body]


def shrink(g: Group, seed_value: int, evaluate: Evaluate, seconds: float,
           concurrent_share: int, say: Callable[[str], None] = print,
           wp: bool = True, corpus: strategies.Corpus | None = None) -> None:
    """Fill in `g.minimized`, `g.min_verdict`, `g.min_outcomes` and `g.shrink`. `corpus`:
    the run's kept programs (a guided run): the replay sees them from the indexes the run
    did, and the candidates see those the diverging program was drawn with."""
    corpus = strategies.Corpus(corpus.entries) if corpus is not None else None
    start = time.monotonic()
    runs0 = evaluate.runs
    # The budget counts from the program on: the replay up to it (Hypothesis drawing the
    # seed's programs again, some milliseconds each) is not shrinking.
    state = {"i": 0, "found": False, "best": None, "t0": start}

    @strategies.fuzz_settings((Phase.generate, Phase.shrink))
    @seed(seed_value)
    @given(strategies.programs(concurrent_share, wp, corpus))
    def test(program: Program) -> None:
        try:
            signals.check()
        except BaseException as exc:  # noqa: BLE001 - carried out of Hypothesis
            raise _Done(exc) from None
        if not state["found"]:
            i = state["i"]
            state["i"] += 1
            if i < g.index:
                if corpus is not None:
                    corpus.at = i + 1
                return
            if program.body() != g.program.body():
                raise _Done(RuntimeError(f"the replay of seed {seed_value} reached another "
                                         f"program at index {g.index}"))
            state["found"] = True
            state["t0"] = time.monotonic()
            state["best"] = (program, g.verdict, g.outcomes)
            _diverges()
        if time.monotonic() - state["t0"] > seconds:
            raise _Done()
        try:
            v, outs = evaluate(program)
        except BaseException as exc:  # noqa: BLE001 - carried out of Hypothesis
            raise _Done(exc) from None
        # first or not: a noisier neighbour may lead. Hypothesis orders examples by how
        # it drew them, which is not always fewer operations (a "whole region" range
        # resolves to many pages; a later mmap may become a slot): a candidate larger than
        # the best so far is not taken, so the result is never bigger than the program.
        if g.signature in v.signatures and program.size() <= state["best"][0].size():
            state["best"] = (program, diff.focus(v, g.signature, program), outs)
            _diverges()

    why = ""
    try:
        test()
    except _Done as done:
        if done.exc is not None and not isinstance(done.exc, RuntimeError):
            raise done.exc from None  # an error of the machines, an interrupt
        why = str(done.exc) if done.exc else f"stopped at the {seconds:.0f}s budget"
    except Flaky:
        # the program diverged once and not when Hypothesis ran it again: a one-off
        why = "flaky: the divergence did not come back when Hypothesis replayed it"
    except _Diverges:
        pass
    except Exception as exc:  # noqa: BLE001 - Hypothesis's report of something else
        why = f"hypothesis: {type(exc).__name__}: {str(exc)[:200]}"
    else:
        why = "the replay ended before the program"
    best = state["best"]
    size0 = g.program.size()
    if best is None:
        g.shrink = {"skipped": why or "not reached"}
        return
    program, v, outs = best
    g.minimized, g.min_verdict, g.min_outcomes = program, v, outs
    g.shrink = {"seconds": round(time.monotonic() - state["t0"], 1),
                "replay_seconds": round(state["t0"] - start, 1),
                "runs": evaluate.runs - runs0,
                "ops_before": size0[0], "ops_after": program.size()[0],
                "pages_before": size0[1], "pages_after": program.size()[1],
                "note": why}
    say(f"[{g.arch}] shrunk '{g.signature}': {size0[0]} -> {program.size()[0]} operations, "
        f"{g.shrink['runs']} runs, {g.shrink['seconds']}s")
