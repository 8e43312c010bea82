"""Reading a plan file: YAML in, a checked `Plan` out, or one line that names the file and
the key at fault (`p.yaml: trees[0].tree: linux-7.0: not an embedded tree ...`).

    root: ../..                    # relative paths below start here (default: the plan's dir)
    arches: [x86_64, arm64]
    trees:                         # an embedded name, a checkout or a tarball; + base
      - {name: "6.1", tree: linux-6.1}
      - {name: "6.12", tree: linux-6.12}
    series:                        # a path or none
      - {name: uffd-move, path: patches/uffd-move}
      - none
    profiles: [default]            # default, debug, or {name, debug: true, configs: [...]}
    targets: [qemu]                # qemu, ssh://[user@]host[:port], or {name, target}
    tests: [uffd_move, vma_merge]  # binaries every cell runs (default: all)
    kselftest: [mm:uffd-unit-tests]  # the kernel's own selftests (orch run --kselftest)
    kselftest_tree: linux-6.12     # where they come from (default: the tree under test)
    coverage: true                 # orch run --coverage (or [mm/mmap.c]: more files); cells
                                   # end in -coverage
    fuzz: 60                       # seconds of `orch fuzz` per compare: new cell, against
                                   # the compare: base cell of its arch (0: none)
    exclude:                       # a cell matching every key of an entry is dropped
      - {tree: "6.1", series: none}
      - {tree: "6.12", series: uffd-move}
    include:                       # extra cells, one value per axis (defaults: first entry)
      - {arch: x86_64, tree: "6.1", series: uffd-move, profile: debug}
    compare:                       # optional: the CI compare job, BASE cells vs NEW cells
      base: {tree: "6.12"}
      new: {tree: "6.1", profile: default}

The cells are the cross product of the axes, minus `exclude`, plus `include`. The checks
run in a fixed order (top-level keys, root, name, each axis, tests, exclude, include,
compare) and the first fault is the one reported. How each axis's entries are checked is
in orchestrator.plan.axes.
"""

from __future__ import annotations

from argparse import ArgumentTypeError
from itertools import product
from pathlib import Path

import yaml

from orchestrator.base.errors import UsageError
from orchestrator.base.paths import PROJECT
from orchestrator.kernel.tree import EMBEDDED
from orchestrator.options import coverage_files
from orchestrator.plan.axes import AXES, BY_KEY, KEYS, NAME_RE, Where, under
from orchestrator.plan.cells import Cell, Entry, Plan, PlanError, make_cell
from orchestrator.testing import kselftest

PLANS = PROJECT / "configs" / "plans"
PLURAL = {a.key: a.plural for a in AXES}
KS_KEYS = ("kselftest", "kselftest_tree")
TOP_KEYS = {"name", "root", "tests", *KS_KEYS, "coverage", "fuzz", "exclude", "include",
            "compare", *PLURAL.values()}
INCLUDE_KEYS = (*KEYS, "tests", *KS_KEYS, "coverage", "fuzz")


def resolve_path(spec: str) -> Path:
    """A plan file, or the name of one shipped in configs/plans/ ("default")."""
    p = Path(spec).expanduser()
    if p.is_file():
        return p
    shipped = PLANS / f"{spec}.yaml"
    if "/" not in spec and shipped.is_file():
        return shipped
    known = ", ".join(sorted(q.stem for q in PLANS.glob("*.yaml")))
    raise PlanError(f"{spec}: no such plan file (shipped plans: {known})")


def load(spec: str | Path, *, cli_options: set[str] | None = None) -> Plan:
    """The plan in file `spec` (or shipped under that name). `cli_options`: the flags of
    this orch's `orch run`, to refuse what it cannot run (None: no such check)."""
    path = resolve_path(str(spec))
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlanError(f"{where}: not valid YAML: {problem}") from None
    except OSError as exc:
        raise PlanError(f"{path}: {exc.strerror}") from None
    return parse(data, path, cli_options=cli_options)


def parse(data, path: Path, *, cli_options: set[str] | None = None) -> Plan:
    """A plan from its YAML document (`path` is for messages and the default root)."""
    if not isinstance(data, dict):
        raise PlanError(f"{path}: a plan is a YAML mapping (arches:, trees:, ...)")
    check_keys(data, path)
    at = Where(path, root(data, path), cli_options)
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        at.fail("name", f"{name!r}: use letters, digits, '.', '_' and '-'")
    axes = {a.key: axis_entries(data, a.key, at) for a in AXES}
    tests = parse_tests(data.get("tests"), "tests", at)
    ks = parse_kselftest(data, "", at)
    cov = parse_coverage(data, "", at)
    cells = product_cells(data, axes, tests, at, ks, cov)
    includes = data.get("include") or []
    cells += include_cells(includes, axes, tests, at, ks, cov)
    check_unique(cells, "include" if includes else "exclude", at)
    plan = Plan(path=path, name=name, root=at.root, axes=axes, cells=cells)
    if data.get("compare") is not None:
        plan.compare = compare_sides(data["compare"], plan, at)
    fuzz_budgets(data, includes, plan, at)
    return plan


def parse_seconds(v, where: str, at: Where) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        at.fail(where, f"{v!r}: seconds of fuzzing, a number >= 0")
    return float(v)


def fuzz_budgets(data: dict, includes: list, plan: Plan, at: Where) -> None:
    """`fuzz:` (top level: every compare: new cell; an include: that cell) gives a cell an
    `orch fuzz` budget against the compare: base cell of its arch."""
    top = parse_seconds(data["fuzz"], "fuzz", at) if "fuzz" in data else 0.0
    own = {}
    n_product = len(plan.cells) - len(includes)
    for i, inc in enumerate(includes):
        if isinstance(inc, dict) and "fuzz" in inc:
            own[plan.cells[n_product + i].name] = parse_seconds(inc["fuzz"],
                                                                f"include[{i}].fuzz", at)
    if not top and not any(own.values()):
        return
    if plan.compare is None:
        at.fail("fuzz", "needs compare: (a cell is fuzzed against the compare: base cell "
                "of its arch)")
    new = {c.name for c in plan.side("new")}
    for name, seconds in own.items():
        if seconds and name not in new:
            at.fail("include", f"fuzz: {name} is not a compare: new cell (only those are "
                    f"fuzzed, against their base cell)")
    for c in plan.cells:
        c.fuzz = own.get(c.name, top if c.name in new else 0.0)
        if c.fuzz:
            plan.fuzz_reference(c)  # exactly one base cell of its arch, else a PlanError


def check_keys(data: dict, path: Path) -> None:
    for k in data:
        if k not in TOP_KEYS:
            hint = f" (did you mean {PLURAL[k]}?)" if k in PLURAL and PLURAL[k] != k else ""
            raise PlanError(f"{path}: {k}: unknown key{hint}; known: "
                            f"{', '.join(sorted(TOP_KEYS))}")


def root(data: dict, path: Path) -> Path:
    spec = data.get("root", ".")
    at = Where(path, path.parent)
    if not isinstance(spec, str):
        at.fail("root", "must be a directory path")
    directory = (path.parent / spec).resolve()
    if not directory.is_dir():
        at.fail("root", f"{directory} is not a directory")
    return directory


def axis_entries(data: dict, key: str, at: Where) -> list[Entry]:
    """The entries of one axis, each checked, names distinct."""
    axis = BY_KEY[key]
    raw = data.get(axis.plural)
    if raw is None:
        if axis.default is None:
            at.fail(axis.plural, "missing (list at least one)")
        raw = list(axis.default)
    if not isinstance(raw, list) or not raw:
        at.fail(axis.plural, "must be a non-empty list")
    entries = [axis.entry(v, f"{axis.plural}[{i}]", at) for i, v in enumerate(raw)]
    seen: set[str] = set()
    for i, e in enumerate(entries):
        if e.name in seen:
            at.fail(f"{axis.plural}[{i}]", f"'{e.name}' is listed twice")
        seen.add(e.name)
    return entries


def parse_tests(raw, where: str, at: Where) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(t, str) and NAME_RE.match(t)
                                            for t in raw):
        at.fail(where, "must be a list of selftest binary names")
    return list(raw)


def parse_kselftest(data: dict, where: str, at: Where,
                    default: tuple[list[str], str] = ([], "")) -> tuple[list[str], str]:
    """`kselftest:` (specs, as `--kselftest` takes them) and `kselftest_tree:` (an embedded
    tree or a path under the root), each defaulting to `default`."""
    specs, tree = default
    pre = f"{where}." if where else ""
    if "kselftest" in data:
        raw = data["kselftest"]
        raw = [raw] if isinstance(raw, str) else raw
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            at.fail(f"{pre}kselftest", "must be a list like [mm:uffd-unit-tests]")
        for x in raw:
            try:
                kselftest.parse_request(x)
            except UsageError as exc:
                at.fail(f"{pre}kselftest", str(exc).removeprefix("--kselftest "))
        specs = list(raw)
    if data.get("kselftest_tree") is not None:
        spec = data["kselftest_tree"]
        if not isinstance(spec, str) or (spec not in EMBEDDED and not (
                at.root / Path(spec).expanduser()).exists()):
            at.fail(f"{pre}kselftest_tree", f"{spec}: not an embedded tree "
                    f"({', '.join(EMBEDDED)}) and no such path under {at.root}")
        tree = spec if spec in EMBEDDED else under(at.root, spec)
    if tree and not specs:
        at.fail(f"{pre}kselftest_tree", "goes with kselftest: [COLLECTION[:PROGRAM]]")
    return specs, tree


def parse_coverage(data: dict, where: str, at: Where,
                   default: list[str] | None = None) -> list[str] | None:
    """`coverage:` true (orch run --coverage), false, or a list of more C files to profile
    (--coverage=FILE,...); absent: `default`."""
    if "coverage" not in data:
        return default
    raw, key = data["coverage"], f"{where}.coverage" if where else "coverage"
    if raw is True:
        return []
    if raw is False or raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
        at.fail(key, "must be true, false or a list of C files like [mm/mmap.c]")
    try:
        return coverage_files(",".join(raw))
    except ArgumentTypeError as exc:
        at.fail(key, str(exc))


def parse_match(m, where: str, at: Where, axes: dict[str, list[Entry]],
                cells: list[Cell] | None = None) -> dict[str, str]:
    """An {axis: entry name} mapping (exclude:, compare:), each name known on its axis
    (or, with `cells`, in a cell)."""
    if not isinstance(m, dict) or not m:
        at.fail(where, "must be a mapping like {arch: arm64, profile: debug}")
    out = {}
    for k, v in m.items():
        if k not in KEYS:
            at.fail(f"{where}.{k}", f"not an axis ({', '.join(KEYS)})")
        v = str(v)
        known = {e.name for e in axes[k]}
        if cells is not None:
            known |= {c.axis(k).name for c in cells}
        if v not in known:
            at.fail(f"{where}.{k}", f"'{v}' is not on the {PLURAL[k]} axis "
                    f"({', '.join(sorted(known))})")
        out[k] = v
    return out


def product_cells(data: dict, axes: dict[str, list[Entry]], tests: list[str],
                  at: Where, ks: tuple[list[str], str] = ([], ""),
                  cov: list[str] | None = None) -> list[Cell]:
    """The cross product of the axes, minus the cells that match an `exclude:` entry."""
    excludes = data.get("exclude") or []
    if not isinstance(excludes, list):
        at.fail("exclude", "must be a list of {axis: name} mappings")
    matches = [parse_match(x, f"exclude[{i}]", at, axes) for i, x in enumerate(excludes)]
    cells = []
    for combo in product(*(axes[k] for k in KEYS)):
        entries = dict(zip(KEYS, combo, strict=True))
        if not any(all(entries[k].name == v for k, v in m.items()) for m in matches):
            cells.append(make_cell(entries, tests, ks, cov))
    return cells


def include_cells(includes, axes: dict[str, list[Entry]], tests: list[str],
                  at: Where, ks: tuple[list[str], str] = ([], ""),
                  cov: list[str] | None = None) -> list[Cell]:
    """The `include:` cells: per axis an entry's name, a new entry, or the axis's first."""
    if not isinstance(includes, list):
        at.fail("include", "must be a list of cells ({arch: ..., tree: ..., ...})")
    cells = []
    for i, inc in enumerate(includes):
        where = f"include[{i}]"
        if not isinstance(inc, dict):
            at.fail(where, "must be a mapping like {arch: x86_64, tree: '6.1'}")
        for k in inc:
            if k not in INCLUDE_KEYS:
                at.fail(f"{where}.{k}", f"unknown key; known: {', '.join(INCLUDE_KEYS)}")
        entries = {}
        for a in AXES:
            if a.key not in inc:
                entries[a.key] = axes[a.key][0]
                continue
            v = inc[a.key]
            named = next((e for e in axes[a.key] if e.name == str(v)), None)
            entries[a.key] = named or a.entry(v, f"{where}.{a.key}", at)
        own = parse_tests(inc["tests"], f"{where}.tests", at) if "tests" in inc else tests
        cells.append(make_cell(entries, own, parse_kselftest(inc, where, at, ks),
                               parse_coverage(inc, where, at, cov)))
    return cells


def check_unique(cells: list[Cell], key: str, at: Where) -> None:
    if not cells:
        at.fail("exclude", "every cell is excluded: the plan has no cells")
    seen: set[str] = set()
    for c in cells:
        if c.name in seen:
            at.fail(key, f"two cells named '{c.name}' (the same combination twice, or names "
                    f"that collide: give the entries distinct names)")
        seen.add(c.name)


def compare_sides(comp, plan: Plan, at: Where) -> dict[str, dict[str, str]]:
    if not isinstance(comp, dict) or set(comp) != {"base", "new"}:
        at.fail("compare", "must be {base: {axis: name, ...}, new: {axis: name, ...}}")
    sides = {}
    for side in ("base", "new"):
        # Match against the cells, so a value that only an include adds is known too.
        m = parse_match(comp[side], f"compare.{side}", at, plan.axes, plan.cells)
        if not plan.select(m):
            at.fail(f"compare.{side}", f"{comp[side]} matches no cell")
        sides[side] = m
    base = {c.name for c in plan.select(sides["base"])}
    if base & {c.name for c in plan.select(sides["new"])}:
        at.fail("compare", "a cell is on both sides (base and new must not overlap)")
    return sides
