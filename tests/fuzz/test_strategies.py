"""Programs from a seed: the same seed gives the same programs, whatever the budget, which
is what --seed and the shrinker's replay rely on."""

from orchestrator.fuzz import strategies
from orchestrator.fuzz.model import Op


def take(seed: int, n: int, share: int = 10):
    got = []

    def consume(p):
        got.append(p)
        if len(got) >= n:
            raise strategies.Stop()
    strategies.stream(seed, consume, strategies.programs(share))
    return got


def test_the_same_seed_gives_the_same_programs():
    a, b = take(11, 120), take(11, 60)
    assert a[:60] == b
    assert take(12, 60) != b


def test_programs_are_varied():
    ps = take(5, 300)
    kinds = {o.kind for p in ps for o in p.ops}
    assert {"mmap", "write", "move", "madv", "ureg", "check", "fork", "mremap"} <= kinds
    assert any(p.concurrent for p in ps) and not all(p.concurrent for p in ps)
    assert all(p.ops[0].kind == "mmap" for p in ps)
    assert len({p.body() for p in ps}) > 240  # few repeats (Hypothesis repeats some)
    assert not any(p.concurrent for p in take(5, 100, share=0))


def test_placements_and_ranges_resolve_against_earlier_regions():
    ops = strategies.resolve([("mmap", ("slot", 2, 5), 16, 0), ("mmap", ("after", 0, 0), 8, 1),
                              ("mmap", ("before", 0, 1), 4, 0), ("move", 0, 1, (1, 2, 3), 4, 0),
                              ("move", 3, 1, ("whole",), 2, 0),
                              ("madv", 1, ("whole",), "free"), ("write", 0, (3, 2), 9),
                              ("mremap", 1, 64, "grow", 0), ("unreg", 1, ("whole",))])
    assert ops[:3] == (Op("mmap", (1029, 16, 0)), Op("mmap", (1045, 8, 1)),
                       Op("mmap", (1024, 4, 0)))
    assert ops[3] == Op("move", (0, 1, 1, 2, 3, 4, 0))
    assert ops[4] == Op("move", (3, 0, 1, 0, 8, 2, 0))  # region 3 is region 0: 16 pages
    assert ops[5:7] == (Op("madv", (1, 0, 8, "free")), Op("write", (0, 3, 2, 9)))
    assert ops[8] == Op("unreg", (1, 0, 64))  # after the mremap
    # clamped into the arena
    assert strategies.resolve([("mmap", ("before", 0, 0), 16, 0)])[0].args[0] == 0


def test_without_wp_no_program_write_protects():
    """Where a kernel of the pair has no uffd write-protect (6.1 on arm64), no program
    registers in wp mode or calls UFFDIO_WRITEPROTECT; the rest is still drawn."""
    got = []

    def consume(p):
        got.append(p)
        if len(got) >= 300:
            raise strategies.Stop()
    strategies.stream(5, consume, strategies.programs(10, wp=False))
    ops = [o for p in got for o in p.ops]
    assert not [o for o in ops if o.kind == "wp"]
    assert not [o for o in ops if o.kind == "ureg" and "w" in o.args[3]]
    assert {"mmap", "write", "move", "madv", "ureg", "fork", "mremap"} <= {o.kind for o in ops}
    with_wp = take(5, 300)
    assert any(o.kind == "wp" for p in with_wp for o in p.ops)


def test_sources_are_paged_out_and_their_soft_dirty_cleared_before_moves():
    """Moves of swapped-out pages (patch 5) need a pageout, a swap device and a move in
    one program, and soft-dirty after the move a clear_refs before it: the skeleton draws
    them often, not by chance alone."""
    ps = [p for p in take(5, 300) if not p.concurrent]
    def at(p):  # the skeleton's pageout: right after the source's write
        w = next((i for i, o in enumerate(p.ops[:3]) if o.kind == "write"), None)
        return w + 1 if w is not None and len(p.ops) > w + 2 and \
            p.ops[w + 1].kind == "madv" and p.ops[w + 1].args[3] == "pageout" else None
    paged = [p for p in ps if at(p) is not None and p.swap != "none"]
    # cleared after the destination is mapped and registered: a VMA mapped after a
    # clear_refs is soft-dirty as a whole (VM_SOFTDIRTY), and pagemap then says D for
    # every page of it, whatever its entries are
    cleared = [p for p in paged if [o.kind for o in p.ops[at(p) + 1:at(p) + 4]] ==
               ["mmap", "ureg", "clear_refs"] and p.ops[at(p) + 3].args == (4,)]
    assert len(paged) >= 15 and len(cleared) >= 5, (len(paged), len(cleared))


def take_guided(seed: int, n: int, entries, share: int = 10):
    """The stream with a corpus whose entries become visible at their indexes, as the
    engine publishes them."""
    corpus = strategies.Corpus(entries)
    got = []

    def consume(p):
        got.append(p)
        corpus.at = len(got)
        if len(got) >= n:
            raise strategies.Stop()
    strategies.stream(seed, consume, strategies.programs(share, corpus=corpus))
    return got


def test_without_a_corpus_the_stream_is_the_unguided_one():
    """A guided run draws a mutation beside every sequential program, kept or not (the
    draws may not depend on what the corpus holds): its programs are its own."""
    def unguided(seed, n):
        got = []

        def consume(p):
            got.append(p)
            if len(got) >= n:
                raise strategies.Stop()
        strategies.stream(seed, consume, strategies.programs(10, corpus=None))
        return got
    assert unguided(11, 80) == take(11, 80)
    assert take_guided(11, 80, []) == take_guided(11, 80, [])
    assert take_guided(11, 80, []) != take(11, 80)


def test_kept_programs_are_mutated_from_their_index_on_the_same_way_every_time():
    base = take(4, 30, share=0)
    kept = next(p for p in base if len(p.ops) >= 8)
    marker = Op("mmap", (77 * 512, 3, 0))  # an mmap no drawn program has
    kept = strategies.Program((*kept.ops, marker), thp=kept.thp, swap=kept.swap)
    a = take_guided(4, 200, [(50, kept)])
    assert a[:50] == take_guided(4, 50, [])  # nothing of it before its index
    mutants = [p for p in a[50:] if marker in p.ops]
    assert 40 < len(mutants) < 100, len(mutants)  # about half of the sequential ones
    assert all(len(p.ops) != len(kept.ops) or p.body() != kept.body() for p in mutants)
    assert take_guided(4, 200, [(50, kept)]) == a
    # operations were inserted among (and dropped from) the kept program's
    assert any(len(p.ops) > len(kept.ops) for p in mutants)
    assert any(set(kept.ops) - set(p.ops) for p in mutants)


def test_operations_inserted_resolve_against_the_regions_before_them():
    raw = [("mmap", ("slot", 3, 0), 512, 0), ("mremap", 0, 1024, "grow", 0),
           ("mmap", ("after", 0, 0), 16, 0), ("write", 1, ("whole",), 1),
           ("move", 1, 0, ("whole",), 0, 0)]
    whole = strategies.resolve(raw)
    for cut in range(len(raw) + 1):
        head = strategies.resolve(raw[:cut])
        tail = strategies.resolve(raw[cut:], strategies.regions_of(head))
        assert head + tail == whole, cut
