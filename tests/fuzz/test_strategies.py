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
    cleared = [p for p in paged if p.ops[at(p) + 1] == Op("clear_refs", (4,))]
    assert len(paged) >= 15 and len(cleared) >= 5, (len(paged), len(cleared))
