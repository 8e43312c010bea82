"""`orch compare BASE NEW`: what changed between two runs (or two merges), per testcase.

Cells are paired first by identical id. The cells left over are paired by successively
looser keys, and only where the key picks exactly one cell on each side:
  1. same arch, tree, base, profile, target (the series differs: a series against itself
     plus one more patch);
  2. same arch, series, profile, target (the tree differs);
  3. same arch, profile, target (tree and series differ: the 6.1 prototype against the
     upstream 6.12 reference);
  4. same arch.
Cells still unpaired are listed; their testcases count as new (NEW side) or gone (BASE).

Per (cell pair, binary, case) the class is: regression (pass -> fail/error), fix
(fail/error/skip -> pass: a test skipped for a missing feature that now passes is what a
series adding the feature fixes), new, gone, skip-change (other changes to or from skip),
still-failing (fail <-> error) or unchanged. Pure functions over two records, so they are
unit-tested on records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from orchestrator.base import files
from orchestrator.base.errors import EXIT_INFRA, EXIT_PASS, EXIT_TEST_FAILED, UsageError
from orchestrator.results import coverage as rescov
from orchestrator.results import merge as mergemod
from orchestrator.results import page
from orchestrator.results import record as results
from orchestrator.results.record import Cell, Record

CLASSES = ["regression", "fix", "new", "gone", "skip-change", "still-failing", "unchanged"]

PAIRING: list[tuple[str, Callable[[Cell], tuple]]] = [
    ("id", lambda c: (c.id,)),
    ("arch+tree", lambda c: (c.arch, c.tree, c.base_ref, c.profile, c.target_kind, c.target)),
    ("arch+series", lambda c: (c.arch, c.series, c.profile, c.target_kind, c.target)),
    ("arch+profile", lambda c: (c.arch, c.profile, c.target_kind, c.target)),
    ("arch", lambda c: (c.arch,)),
]


def classify(base: str | None, new: str | None) -> str:
    if base is None:
        return "new"
    if new is None:
        return "gone"
    if base == new:
        return "unchanged"
    if base == "skip" and new == "pass":
        return "fix"  # it could not run (a feature missing: the series adds it), now passes
    if "skip" in (base, new):
        return "skip-change"
    if base == "pass":
        return "regression"
    if new == "pass":
        return "fix"
    return "still-failing"


@dataclass
class Pair:
    base: str | None  # cell id, None: only in NEW
    new: str | None  # cell id, None: only in BASE
    by: str  # how they were paired ("id", "arch", ...), or "unpaired"


@dataclass
class Change:
    base_cell: str | None
    new_cell: str | None
    binary: str
    name: str
    base: str | None  # status in BASE
    new: str | None  # status in NEW
    cls: str
    message: str  # NEW's message (or BASE's when the case is gone)


def pair_cells(base: list[Cell], new: list[Cell]) -> list[Pair]:
    left_b = list(base)
    left_n = list(new)
    pairs: list[Pair] = []
    for how, key in PAIRING:
        for b in list(left_b):
            kb = key(b)
            cands_b = [x for x in left_b if key(x) == kb]
            cands_n = [x for x in left_n if key(x) == kb]
            if len(cands_b) == 1 and len(cands_n) == 1:
                pairs.append(Pair(b.id, cands_n[0].id, how))
                left_b.remove(b)
                left_n.remove(cands_n[0])
    pairs += [Pair(b.id, None, "unpaired") for b in left_b]
    pairs += [Pair(None, n.id, "unpaired") for n in left_n]
    return pairs


def compare(base: Record, new: Record) -> tuple[list[Pair], list[Change]]:
    pairs = pair_cells(base.cells, new.cells)
    changes: list[Change] = []
    for p in pairs:
        bt = {(t.binary, t.name): t for t in base.tests if t.cell == p.base} if p.base else {}
        nt = {(t.binary, t.name): t for t in new.tests if t.cell == p.new} if p.new else {}
        keys = list(bt) + [k for k in nt if k not in bt]
        for k in keys:
            b, n = bt.get(k), nt.get(k)
            changes.append(Change(p.base, p.new, k[0], k[1], b.status if b else None,
                                  n.status if n else None,
                                  classify(b.status if b else None, n.status if n else None),
                                  (n or b).message))  # type: ignore[union-attr]
    return pairs, changes


def counts(changes: list[Change], pair: Pair | None = None) -> dict[str, int]:
    c = dict.fromkeys(CLASSES, 0)
    for ch in changes:
        if pair is None or (ch.base_cell, ch.new_cell) == (pair.base, pair.new):
            c[ch.cls] += 1
    return c


def exit_code(new: Record, pairs: list[Pair], changes: list[Change]) -> int:
    """1: a regression. 3: no regression, but a NEW cell did not finish its tests
    (infrastructure), so "no regression" could not be concluded. 0 otherwise."""
    if any(ch.cls == "regression" for ch in changes):
        return EXIT_TEST_FAILED
    for p in pairs:
        if p.new and new.cell(p.new).exit_code not in (EXIT_PASS, EXIT_TEST_FAILED):
            return EXIT_INFRA
    return EXIT_PASS


def render_md(base_name: str, new_name: str, base: Record, new: Record, pairs: list[Pair],
              changes: list[Change], code: int) -> str:
    total = counts(changes)
    lines = [f"### orch compare: `{base_name}` → `{new_name}` (exit {code})", "",
             ", ".join(f"{v} {k}" for k, v in total.items()), "",
             "| base cell | new cell | paired by | " + " | ".join(CLASSES) + " |",
             "|---|---|---|" + "---|" * len(CLASSES)]
    for p in pairs:
        c = counts(changes, p)
        lines.append(f"| `{p.base or '–'}` | `{p.new or '–'}` | {p.by} | "
                     + " | ".join(str(c[k]) for k in CLASSES) + " |")
    for p in pairs:
        mine = [ch for ch in changes if (ch.base_cell, ch.new_cell) == (p.base, p.new)]
        rows = []
        for binary in dict.fromkeys(ch.binary for ch in mine):
            of = [ch for ch in mine if ch.binary == binary]
            classes = {ch.cls for ch in of}
            if len(of) > 1 and classes in ({"gone"}, {"new"}):
                # A binary that ran on one side only: one row, not one per test.
                side = [ch.base if ch.cls == "gone" else ch.new for ch in of]
                tally = ", ".join(f"{side.count(x)} {x}" for x in dict.fromkeys(side))
                cls = classes.pop()
                rows.append((CLASSES.index(cls), binary, "",
                             f"| {cls} | {binary} | (all {len(of)} tests) | "
                             f"{tally if cls == 'gone' else '–'} | "
                             f"{tally if cls == 'new' else '–'} | |"))
                continue
            for ch in of:
                if ch.cls != "unchanged":
                    rows.append((CLASSES.index(ch.cls), binary, ch.name,
                                 f"| {ch.cls} | {binary} | {ch.name} | {ch.base or '–'} | "
                                 f"{ch.new or '–'} | {mergemod.md_cell(ch.message)[:200]} |"))
        if not rows:
            continue
        lines += ["", f"#### `{p.base or '–'}` → `{p.new or '–'}`", "",
                  "| class | binary | test | base | new | message |",
                  "|---|---|---|---|---|---|"]
        lines += [r[3] for r in sorted(rows)]
    return "\n".join(lines) + "\n"


def side_file(path: Path) -> Path | None:
    """The results.json a side is: the file itself, a run's or a merge's; None for a
    directory of runs (merged in memory)."""
    if path.is_file():
        return path
    found = mergemod.find_results(path)
    return found[0] if len(found) == 1 else None


def load_side(path: Path) -> Record:
    """A run directory, a merged directory, a results.json, or a directory of runs."""
    src = side_file(path)
    if src is not None:
        return results.load(src)
    # Read in place, not written: nothing under `path` is excluded (it all is the side).
    return mergemod.merge([path], path, exclude_out=False)


def run(base_path: Path, new_path: Path, out: Path | None = None,
        coverage: bool = False) -> int:
    """`orch compare`. Patch coverage's lines gained and lost are added when both sides
    have coverage; `coverage`: a side without any is an error."""
    try:
        base, new = load_side(base_path), load_side(new_path)
        for side, rec in ((base_path, base), (new_path, new)):
            if coverage and not rec.coverage:
                raise UsageError(f"--coverage: {side} has no patch coverage (its run had no "
                                 f"--coverage)")
    except UsageError as exc:
        exc.stage = "compare"
        raise
    out = out or (new_path if new_path.is_dir() else new_path.parent)
    pairs, changes = compare(base, new)
    code = exit_code(new, pairs, changes)
    md = render_md(str(base_path), str(new_path), base, new, pairs, changes, code)
    gl = rescov.gained_lost(base.coverage, new.coverage) \
        if base.coverage and new.coverage else None
    if gl is not None:
        md += rescov.compare_md(gl)
    out.mkdir(parents=True, exist_ok=True)
    files.write_text(out / "compare.md", md)
    data = {
        "base": str(base_path),
        "new": str(new_path),
        "exit_code": code,
        "counts": counts(changes),
        "pairs": [{**asdict(p), "counts": counts(changes, p)} for p in pairs],
        "changes": [asdict(ch) for ch in changes],
        **({"coverage": gl} if gl is not None else {}),
    }
    files.write_json(out / "compare.json", data)
    # The page: NEW's record (as its results.json has it) with this comparison; in NEW's
    # directory it replaces the run's own page.
    src = side_file(new_path)
    page.write(out / page.FILENAME, page.read_json(src, "an orch results file") if src
               else new.to_json(), data, base=src.parent if src else new_path)
    print(md, end="")
    return code
