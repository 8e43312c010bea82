"""Programs from a seed, with Hypothesis: its strategies generate them and its shrinker makes
a diverging one smaller (shrink.py), so no delta debugger is written here.

`stream(seed, consume)` feeds `consume` the programs of one seed in order, for ever (until
`consume` raises `Stop`): a Hypothesis run with a fixed seed and fixed settings draws the
same sequence every time, which is what makes `--seed` reproducible and lets shrink.py
replay the sequence up to a diverging program.

A program's operations are drawn as a list, so Hypothesis shrinks by deleting operations and
by moving each number toward the first of its choices (small sizes, page 0, region 0).
mmap placements are drawn symbolically (a 2 MiB slot, or right after or before an earlier
region, with a small gap) and resolved in order: adjacent mappings, which the VMA merge
rules care about, are common, and stay adjacent while the program shrinks.
"""

from __future__ import annotations

from typing import Callable, Sequence

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from orchestrator.fuzz.model import ADVICE, SWAPS, THP_MODES, Op, Program

ARENA_PAGES = 80 * 512  # fuzz/fuzz_core.h
PMD_PAGES = 512
# Generation must not depend on how many programs a run will take: a budget in seconds
# has no count. The same settings (and this bound) every time, stopped by Stop.
MAX_EXAMPLES = 10**9


class Stop(BaseException):
    """Raised by a consumer to end the stream (a BaseException: Hypothesis must not take it
    for a failing example and shrink it)."""


def _pages(choices: list[int], top: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(choices), st.integers(0, top))


REGION = st.integers(0, 7)
PAGE = _pages([0, 1, 255, 256, 511, 512, 513], 2047)
NPAGES = st.one_of(st.sampled_from([1, 2, 16, 511, 512, 513, 1024]), st.integers(1, 2048))
SMALL_N = st.one_of(st.sampled_from([1, 2, 8]), st.integers(1, 64))
# A page range: the whole region (resolved against its size) or [PG, PG+N).
RANGE = st.one_of(st.just(("whole",)), st.tuples(PAGE, NPAGES))
# The advice that changes what a page is (free, pageout, dontneed) more often than the rest.
ADVICE_W = ("free", "pageout", "dontneed", "free", "pageout", "collapse", *ADVICE)

# Kinds by weight (repeats); sampled_from shrinks toward the first.
KIND_WEIGHTS = (["write"] * 4 + ["mmap"] * 3 + ["move"] * 6 + ["madv"] * 4 + ["ureg"] * 2
                + ["check"] * 2 + ["read", "mprot", "mremap", "munmap", "fork", "wp",
                                   "unreg", "clear_refs", "reap"])


def _mmap() -> st.SearchStrategy:
    npages = st.one_of(st.sampled_from([512, 1, 16, 1024, 513, 511, 2048]),
                       st.integers(1, 2048))
    slot = st.tuples(st.just("slot"), st.integers(0, 75),
                     st.one_of(st.sampled_from([0, 0, 1, 256, 511]), st.integers(0, 511)))
    near = st.tuples(st.sampled_from(["after", "before"]), REGION,
                     st.sampled_from([0, 0, 0, 1, 16]))
    return st.tuples(st.just("mmap"), st.one_of(slot, near), npages,
                     st.sampled_from([0, 0, 0, 1]))


def _op(kind: str, wp: bool = True) -> st.SearchStrategy:
    if kind == "mmap":
        return _mmap()
    if kind == "write":
        return st.tuples(st.just(kind), REGION, RANGE, st.integers(1, 15))
    if kind in ("read", "munmap", "unreg"):
        return st.tuples(st.just(kind), REGION, RANGE)
    if kind == "madv":
        return st.tuples(st.just(kind), REGION, RANGE, st.sampled_from(ADVICE_W))
    if kind == "mprot":
        return st.tuples(st.just(kind), REGION, RANGE, st.sampled_from(["r", "none", "rw"]))
    if kind == "mremap":
        return st.tuples(st.just(kind), REGION, NPAGES,
                         st.sampled_from(["grow", "move", "dontunmap"]),
                         st.integers(0, ARENA_PAGES - 1))
    if kind == "fork":
        return st.tuples(st.just(kind), st.sampled_from(["exit", "live", "write"]), REGION,
                         PAGE)
    if kind == "ureg":
        return st.tuples(st.just(kind), REGION, RANGE,
                         st.sampled_from(["m", "w", "mw"] if wp else ["m"]))
    if kind == "wp":
        return st.tuples(st.just(kind), REGION, RANGE, st.sampled_from([1, 0]))
    if kind == "move":
        return st.tuples(st.just(kind), REGION, REGION,
                         st.one_of(st.just(("whole",)), st.tuples(PAGE, PAGE, NPAGES)),
                         st.one_of(st.sampled_from([0, 2, 1, 3]), st.integers(0, 7)),
                         st.sampled_from([0] * 12 + [1, 2, 3]))
    if kind == "clear_refs":
        return st.tuples(st.just(kind), st.sampled_from([4, 1]))
    return st.tuples(st.just(kind))


# one_of over the kinds' strategies, repeated by weight (not sampled_from(...).flatmap(),
# which costs half again as much to draw: generation runs beside the guests).
RAW_OP = st.one_of(*[_op(k) for k in KIND_WEIGHTS])
# Where a kernel of the pair has no uffd write-protect (6.1 on arm64): no wp registration
# and no UFFDIO_WRITEPROTECT, so that a program does not differ by that base difference and
# everything that follows from it (session.py measures it on both kernels first).
RAW_OP_NO_WP = st.one_of(*[_op(k, wp=False) for k in KIND_WEIGHTS if k != "wp"])
RANGED = ("write", "read", "munmap", "unreg", "madv", "mprot", "ureg", "wp")


def regions_of(ops: Sequence[Op]) -> list[tuple[int, int]]:
    """The regions (arena page, pages) the executor has after `ops`, as resolve() keeps
    them: every mmap makes one, an mremap other than dontunmap resizes one."""
    regions: list[tuple[int, int]] = []
    for o in ops:
        if o.tid:
            continue
        if o.kind == "mmap":
            regions.append((o.args[0], o.args[1]))
        elif o.kind == "mremap" and regions and o.args[2] != "dontunmap":
            i = o.args[0] % len(regions)
            regions[i] = (regions[i][0], max(1, min(o.args[1], ARENA_PAGES)))
    return regions


def resolve(raw: list[tuple], regions: list[tuple[int, int]] | None = None) -> \
        tuple[Op, ...]:
    """Symbolic placements and ranges to numbers, in program order, against the regions the
    executor will have (every mmap makes one, mapped or not; an mremap resizes it): mmap
    next to an earlier region, an operation on a whole region, a move of a whole region.
    `regions`: those of the operations before (regions_of), when `raw` goes after some."""
    regions = list(regions or [])
    ops = []

    def size(r: int) -> int:
        return regions[r % len(regions)][1] if regions else 1

    for r in raw:
        kind = r[0]
        if kind == "mmap":
            (how, a, b), npages, flags = r[1], r[2], r[3]
            if how == "slot" or not regions:
                off = (a if how == "slot" else 0) * PMD_PAGES + (b if how == "slot" else 0)
            else:
                start, n = regions[a % len(regions)]
                off = start + n + b if how == "after" else start - npages - b
            off = max(0, min(off, ARENA_PAGES - npages))
            regions.append((off, npages))
            ops.append(Op("mmap", (off, npages, flags)))
        elif kind in RANGED:
            reg, rng, rest = r[1], r[2], r[3:]
            pg, n = (0, size(reg)) if rng == ("whole",) else rng
            ops.append(Op(kind, (reg, pg, n, *rest)))
        elif kind == "move":
            dr, sr, rng, mode, mis = r[1:]
            dpg, spg, n = (0, 0, min(size(dr), size(sr))) if rng == ("whole",) else rng
            ops.append(Op(kind, (dr, dpg, sr, spg, n, mode, mis)))
        else:
            if kind == "mremap" and regions and r[3] != "dontunmap":
                i = r[1] % len(regions)
                regions[i] = (regions[i][0], max(1, min(r[2], ARENA_PAGES)))
            ops.append(Op(kind, tuple(r[1:])))
    return tuple(ops)


# A source written in full and a destination registered for missing faults, both PMD
# aligned: what most moves want, as the first operations of half the programs.
# The source may be paged out after it is written (swapped, where the program has swap),
# and the soft-dirty bits cleared once the destination is mapped too (a VMA mapped after
# a clear_refs is soft-dirty as a whole, VM_SOFTDIRTY, so pagemap says D for every page of
# it, and a move could not show what it does to the bit): moves of swap entries (the
# series' patch 5) and what they do to soft-dirty are otherwise rare, since they need a
# pageout, a swap device, a clear_refs and a move of those pages in one program (a bug
# planted there was not found in two 10-minute runs without this).
SKELETON = st.tuples(st.sampled_from([512, 1024]), st.integers(0, 37),
                     st.sampled_from(["hugepage", "none"]),
                     st.sampled_from(["none", "pageout", "pageout+clear_refs"]))


def skeleton(npages: int, slot: int, advice: str, after: str = "none") -> list[tuple]:
    out = [("mmap", ("slot", slot, 0), npages, 0)]
    if advice != "none":
        out.append(("madv", 0, ("whole",), advice))
    out.append(("write", 0, ("whole",), 1))
    if after != "none":
        out.append(("madv", 0, ("whole",), "pageout"))
    out += [("mmap", ("slot", slot + 38, 0), npages, 0), ("ureg", 1, ("whole",), "m")]
    if after == "pageout+clear_refs":  # after the destination's mmap (VM_SOFTDIRTY)
        out.append(("clear_refs", 4))
    return out


@st.composite
def sequential(draw, wp: bool = True) -> Program:
    thp = draw(st.sampled_from(("always", *THP_MODES)))
    swap = draw(st.sampled_from(SWAPS))
    first = [draw(_mmap())]
    if draw(st.booleans()):
        first = skeleton(*draw(SKELETON))
    rest = draw(st.lists(RAW_OP if wp else RAW_OP_NO_WP, min_size=1, max_size=30))
    return Program(resolve([*first, *rest]), thp=thp, swap=swap)


@st.composite
def concurrent(draw) -> Program:
    """Threads moving pages of the same large folios at once: src and dst of one or two
    PMDs, src written (as a THP where the mode gives one), then 2-3 threads of moves
    between them in both directions. Compared by invariants only (diff.py)."""
    pmds = draw(st.sampled_from([1, 2]))
    n = pmds * PMD_PAGES
    setup = [Op("mmap", (0, n, 0)), Op("mmap", (8 * PMD_PAGES, n, 0))]
    if draw(st.booleans()):
        setup.append(Op("madv", (0, 0, n, "hugepage")))
    setup.append(Op("write", (0, 0, n, 1)))
    if draw(st.booleans()):
        setup.append(Op("madv", (0, 0, n, "collapse")))
    setup += [Op("ureg", (0, 0, n, "m")), Op("ureg", (1, 0, n, "m"))]
    if draw(st.booleans()):  # some pages already at dst: EEXIST in the races
        setup.append(Op("move", (1, 0, 0, 0, draw(st.integers(1, 16)), 0, 0)))
    setup.append(Op("check"))
    threads = draw(st.integers(2, 3))
    moves = []
    for t in range(1, threads + 1):
        for _ in range(draw(st.integers(1, 6))):
            back = draw(st.booleans())
            dpg, spg = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
            moves.append(Op("move", (0 if back else 1, dpg, 1 if back else 0, spg,
                                     draw(SMALL_N), draw(st.sampled_from([2, 0, 3, 1])), 0),
                            tid=t))
    swap = draw(st.sampled_from(["none", "zram"]))
    return Program(tuple(setup + moves), thp="always", swap=swap, threads=threads)


class Corpus:
    """The programs a guidance hook kept (engine.Hooks), as the stream sees them: each is
    visible from a stream index on (`add`), the first drawn after the batch that reached
    new lines was recorded. The stream draws from what is visible at the index it is at
    (`at`), so a replay that sets the same index sees the same corpus (shrink.py): the
    programs of a seed are the same as long as the same programs are kept."""

    def __init__(self, entries: Sequence[tuple[int, Program]] = ()):
        self.entries: list[tuple[int, Program]] = list(entries)
        self.at = 0

    def add(self, index: int, program: Program) -> None:
        if not program.concurrent:  # mutations keep to sequential programs
            self.entries.append((index, program))

    def visible(self) -> list[Program]:
        return [p for i, p in self.entries if i <= self.at]


# A mutation's choices have one shape whatever the corpus holds: Hypothesis must see the
# same draws at the same place (a strategy whose draws depend on outside state is "flaky"
# to it). A kept program's first KEEP_MAX operations each stay unless their draw is 0 (1 in
# 16), which the shrinker moves them to: it deletes a kept program's operations as it does
# drawn ones. A mutant keeps to MUTANT_OPS operations and MUTANT_MMAPS regions (the
# executor's MAXOPS and MAXREG are 256 and 32).
KEEP_MAX, MUTANT_OPS, MUTANT_MMAPS = 64, 60, 30

def _mutation(raw_op: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(st.integers(0, 2**16 - 1),
                     st.lists(st.integers(0, 15), min_size=KEEP_MAX, max_size=KEEP_MAX),
                     st.lists(st.tuples(st.integers(0, 255), raw_op), min_size=1, max_size=4),
                     st.integers(0, 3), st.sampled_from(THP_MODES), st.integers(0, 3),
                     st.sampled_from(SWAPS))


MUTATION, MUTATION_NO_WP = _mutation(RAW_OP), _mutation(RAW_OP_NO_WP)


def mutate(corpus: Sequence[Program], choices: tuple) -> Program:
    """A kept program changed by a mutation's choices: some of its operations dropped, 1-4
    drawn ones inserted (resolved against the regions before them), sometimes another THP
    mode or swap device."""
    pick, keep, inserts, thp_same, thp, swap_same, swap = choices
    base = corpus[pick % len(corpus)]
    ops = [o for i, o in enumerate(base.ops) if i >= KEEP_MAX or keep[i] != 0]
    for pos, raw in inserts:
        if len(ops) >= MUTANT_OPS or (raw[0] == "mmap" and sum(
                o.kind == "mmap" for o in ops) >= MUTANT_MMAPS):
            continue
        i = len(ops) - pos % (len(ops) + 1)  # 0 shrinks toward appending
        ops[i:i] = resolve([raw], regions_of(ops[:i]))
    return Program(tuple(ops), thp=base.thp if thp_same else thp,
                   swap=base.swap if swap_same else swap)


def programs(concurrent_share: int = 10, wp: bool = True,
             corpus: Corpus | None = None) -> st.SearchStrategy[Program]:
    """One program in `concurrent_share` is a concurrent one (0: never). `wp` False: no
    uffd write-protect in any program (the same seed then draws other programs).
    `corpus` (a guided run): each sequential program draws a fresh one and a mutation, and
    is the mutation of a kept program half the time there is one to mutate. The draws
    are the same whatever the corpus holds (so a guided run's programs differ from an
    unguided one's from the start); without a corpus, none are drawn for it."""

    def fresh(draw) -> Program:
        if corpus is None:
            return draw(sequential(wp))
        program = draw(sequential(wp))
        mutation = draw(MUTATION if wp else MUTATION_NO_WP)
        kept = corpus.visible()
        if draw(st.integers(0, 1)) == 1 and kept:
            return mutate(kept, mutation)
        return program

    @st.composite
    def either(draw) -> Program:
        if concurrent_share > 0 and \
                draw(st.integers(0, concurrent_share - 1)) == concurrent_share - 1:
            return draw(concurrent())
        return fresh(draw)
    return either()


def fuzz_settings(phases: tuple[Phase, ...]) -> settings:
    return settings(max_examples=MAX_EXAMPLES, phases=phases, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    derandomize=False, print_blob=False)


def stream(seed_value: int, consume: Callable[[Program], None],
           strategy: st.SearchStrategy[Program] | None = None) -> None:
    """Feed `consume` the seed's programs in order until it raises Stop (or another
    BaseException, which propagates)."""
    strat = strategy if strategy is not None else programs()

    @fuzz_settings((Phase.generate,))
    @seed(seed_value)
    @given(strat)
    def run(program: Program) -> None:
        consume(program)

    try:
        run()
    except Stop:
        pass
