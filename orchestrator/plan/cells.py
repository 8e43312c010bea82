"""A plan as data: its cells (one entry per axis, a stable name, the tests they run), and the
`orch run` command line each cell stands for. Plans are read and checked in
orchestrator.plan.schema, printed for CI in orchestrator.plan.emit; how each axis's entries
are written, checked, named and run is in orchestrator.plan.axes."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.plan.axes import AXES, BY_KEY, DEFAULT_TARGET, KEYS, Entry, PlanError

# Seconds of shrinking per divergence signature in a plan's fuzz run (a CI job): bounded,
# whatever the number of signatures found (orch fuzz's own default is 300).
FUZZ_SHRINK_SECONDS = 60.0

__all__ = ["AXES", "DEFAULT_TARGET", "KEYS", "Cell", "Entry", "Plan", "PlanError", "make_cell"]


@dataclass
class Cell:
    """One combination of axis entries: `cell.arch`, `cell.tree`... are its entries."""

    name: str
    entries: dict[str, Entry]
    tests: list[str] = field(default_factory=list)
    # The kernel's own selftests (--kselftest specs) and the tree they come from (an
    # embedded name or an absolute path; "" for the tree under test).
    kselftest: list[str] = field(default_factory=list)
    kselftest_tree: str = ""
    coverage: list[str] | None = None  # orch run --coverage[=FILES]: None, or extra files
    fuzz: float = 0.0  # seconds of `orch fuzz` against its compare: base cell (0: none)

    def __getattr__(self, key: str) -> Entry:
        entries = self.__dict__.get("entries", {})
        if key in entries:
            return entries[key]
        raise AttributeError(key)

    def axis(self, key: str) -> Entry:
        return self.entries[key]

    def describe(self) -> dict:
        doc: dict = {"name": self.name}
        for a in AXES:
            doc.update(a.fields(self.entries[a.key]))
        doc["tests"] = list(self.tests)
        if self.kselftest:
            doc["kselftest"] = list(self.kselftest)
            doc["kselftest_tree"] = self.kselftest_tree or None
        if self.coverage is not None:
            doc["coverage"] = list(self.coverage)
        if self.fuzz:
            doc["fuzz"] = self.fuzz
        return doc


def make_cell(entries: dict[str, Entry], tests: list[str],
              kselftest: tuple[list[str], str] = ([], ""),
              coverage: list[str] | None = None) -> Cell:
    """A cell, named by its entries (`x86_64-6.1-uffd-move`), leaving out the implicit ones
    (no series, the default profile, QEMU); a coverage cell ends in `-coverage`."""
    parts = [entries[a.key].name for a in AXES if a.in_name(entries[a.key])]
    if coverage is not None:
        parts.append("coverage")
    return Cell(name="-".join(parts), entries={k: entries[k] for k in KEYS},
                tests=list(tests), kselftest=list(kselftest[0]), kselftest_tree=kselftest[1],
                coverage=None if coverage is None else list(coverage))


@dataclass
class Plan:
    path: Path
    name: str
    root: Path
    axes: dict[str, list[Entry]]
    cells: list[Cell]
    compare: dict[str, dict[str, str]] | None = None

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise PlanError(f"{self.path}: no cell '{name}'; cells: "
                        f"{', '.join(c.name for c in self.cells)}")

    def select(self, match: dict[str, str]) -> list[Cell]:
        return [c for c in self.cells if all(c.axis(k).name == v for k, v in match.items())]

    def side(self, side: str) -> list[Cell]:
        """The cells of one side (base or new) of the plan's compare: section."""
        assert self.compare is not None
        return self.select(self.compare[side])

    def fuzz_reference(self, cell: Cell) -> Cell:
        """The compare: base cell a cell is fuzzed against: the one of its arch (and of its
        profile and target, when the arch has several)."""
        base = [c for c in self.side("base") if c.arch.name == cell.arch.name]
        if len(base) > 1:
            base = [c for c in base if c.profile.name == cell.profile.name and
                    c.target.name == cell.target.name]
        if len(base) != 1:
            raise PlanError(f"{self.path}: fuzz: cell {cell.name} needs exactly one compare: "
                            f"base cell of its arch to fuzz against (found "
                            f"{', '.join(c.name for c in base) or 'none'})")
        return base[0]

    def fuzz_argv(self, cell: Cell) -> list[str]:
        """The `orch fuzz` options of a cell with a fuzz budget: the cell's own kernel, the
        reference's tree and series, the budget; and what makes a CI job's fuzz repeatable
        and bounded: the cell's own seed (its name's CRC-32: the same programs on every
        commit, so a change in the result is the kernels', not the draw's) and
        FUZZ_SHRINK_SECONDS of shrinking per signature. A --seed or --shrink-time given
        after --plan overrides them (the last one counts)."""
        ref = self.fuzz_reference(cell)
        argv = [w for a in AXES if a.key != "target"
                for w in a.argv(cell.axis(a.key), self.root)]
        tree = BY_KEY["tree"].argv(ref.tree, self.root)
        series = BY_KEY["series"].argv(ref.series, self.root)
        return argv + ["--against", tree[1], "--against-series", series[1],
                       "--time", f"{cell.fuzz:g}", "--seed", str(zlib.crc32(cell.name.encode())),
                       "--shrink-time", f"{FUZZ_SHRINK_SECONDS:g}", *coverage_argv(cell)]

    def cell_argv(self, cell: Cell) -> list[str]:
        """The `orch run` options that make this cell (paths absolute, from the plan's
        root): `orch run --plan F --cell N` parses exactly these."""
        argv = [w for a in AXES for w in a.argv(cell.axis(a.key), self.root)]
        for t in cell.tests:
            argv += ["--test", t]
        for k in cell.kselftest:
            argv += ["--kselftest", k]
        if cell.kselftest and cell.kselftest_tree:
            argv += ["--kselftest-tree", cell.kselftest_tree]
        return argv + coverage_argv(cell)


def coverage_argv(cell: Cell) -> list[str]:
    """A coverage cell's `--coverage[=FILES]`, for `orch run` (a coverage build) and for
    `orch fuzz` (guided by the series' lines it reaches)."""
    if cell.coverage is None:
        return []
    return ["--coverage" + (f"={','.join(cell.coverage)}" if cell.coverage else "")]
