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

from typing import Callable

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


def resolve(raw: list[tuple]) -> tuple[Op, ...]:
    """Symbolic placements and ranges to numbers, in program order, against the regions the
    executor will have (every mmap makes one, mapped or not; an mremap resizes it): mmap
    next to an earlier region, an operation on a whole region, a move of a whole region."""
    regions: list[tuple[int, int]] = []
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
# and its soft-dirty bits cleared after that: moves of swap entries (the series' patch 5)
# and what they do to soft-dirty are otherwise rare, since they need a pageout, a swap
# device, a clear_refs and a move of those pages in one program (a bug planted there was
# not found in two 10-minute runs without this).
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
    if after == "pageout+clear_refs":
        out.append(("clear_refs", 4))
    out += [("mmap", ("slot", slot + 38, 0), npages, 0), ("ureg", 1, ("whole",), "m")]
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


def programs(concurrent_share: int = 10, wp: bool = True) -> st.SearchStrategy[Program]:
    """One program in `concurrent_share` is a concurrent one (0: never). `wp` False: no
    uffd write-protect in any program (the same seed then draws other programs)."""
    if concurrent_share <= 0:
        return sequential(wp)

    @st.composite
    def either(draw) -> Program:
        if draw(st.integers(0, concurrent_share - 1)) == concurrent_share - 1:
            return draw(concurrent())
        return draw(sequential(wp))
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
