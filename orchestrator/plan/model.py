"""Plan files: the cells a CI matrix runs, in YAML.

A plan names axes (arches, trees, series, profiles, targets); its cells are their cross
product, minus `exclude`, plus `include`. Every cell has a stable name (`x86_64-6.1-uffd-move`)
that is also its CI job name and its artifact name. `orch plan FILE --format ...` prints the
cells the way a CI system wants them; `orch run --plan FILE --cell NAME` runs one cell with
exactly the options of the equivalent hand-written `orch run` (see `cell_argv`).

    root: ../..                    # relative paths below start here (default: the plan's dir)
    arches: [x86_64, arm64]
    trees:                         # an embedded name, a checkout or a tarball; + base
      - {name: "6.1", tree: linux-6.1}
      - {name: "6.12", tree: linux-6.12}
    series:                        # a path or none
      - {name: uffd-move, path: patches/uffd-move}
      - none
    profiles: [default]            # default, debug, or {name, debug: true, configs: [...]}
    targets: [qemu]
    tests: [uffd_move, vma_merge]  # binaries every cell runs (default: all)
    exclude:                       # a cell matching every key of an entry is dropped
      - {tree: "6.1", series: none}
      - {tree: "6.12", series: uffd-move}
    include:                       # extra cells, one value per axis (defaults: first entry)
      - {arch: x86_64, tree: "6.1", series: uffd-move, profile: debug}
    compare:                       # optional: the CI compare job, BASE cells vs NEW cells
      base: {tree: "6.12"}
      new: {tree: "6.1", profile: default}
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import yaml

from orchestrator.base.errors import UsageError
from orchestrator.base.paths import PROJECT
from orchestrator.kernel import arch as archmod
from orchestrator.kernel.tree import EMBEDDED
from orchestrator.targets.ssh import parse_address

PLANS = PROJECT / "configs" / "plans"
AXES = ("arch", "tree", "series", "profile", "target")  # cell keys, in name order
PLURAL = {"arch": "arches", "tree": "trees", "series": "series", "profile": "profiles",
          "target": "targets"}
TOP_KEYS = {"name", "root", "tests", "exclude", "include", "compare", *PLURAL.values()}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_TARGET = "qemu"


class PlanError(UsageError):
    stage = "plan"


@dataclass(frozen=True)
class Entry:
    """One value of an axis: `name` is what cell names, exclusions and includes use."""

    name: str
    value: str = ""  # tree spec, series path ("none"), target name, arch name
    base: str | None = None  # trees only
    debug: bool = False  # profiles only
    configs: tuple[str, ...] = ()  # profiles only


@dataclass
class Cell:
    name: str
    arch: Entry
    tree: Entry
    series: Entry
    profile: Entry
    target: Entry
    tests: list[str] = field(default_factory=list)

    def axis(self, key: str) -> Entry:
        return getattr(self, key)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "arch": self.arch.name,
            "tree": self.tree.name,
            "tree_spec": self.tree.value,
            "base": self.tree.base,
            "series": self.series.name,
            "series_path": self.series.value,
            "profile": self.profile.name,
            "debug": self.profile.debug,
            "configs": list(self.profile.configs),
            "target": self.target.name,
            "tests": list(self.tests),
        }


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

    def cell_argv(self, cell: Cell) -> list[str]:
        """The `orch run` options that make this cell (paths absolute, from the plan's
        root): `orch run --plan F --cell N` parses exactly these."""
        argv = ["--arch", cell.arch.name, "--tree", self._path(cell.tree.value, tree=True)]
        if cell.tree.base:
            argv += ["--base", cell.tree.base]
        argv += ["--series", "none" if cell.series.value == "none"
                 else self._path(cell.series.value)]
        for c in cell.profile.configs:
            p = self.root / c
            argv += ["--config", str(p.resolve()) if p.exists() else c]
        if cell.profile.debug:
            argv.append("--debug")
        if cell.target.value != DEFAULT_TARGET:
            argv += ["--target", cell.target.value]
        for t in cell.tests:
            argv += ["--test", t]
        return argv

    def _path(self, value: str, tree: bool = False) -> str:
        if tree and value in EMBEDDED:
            return value
        return str((self.root / Path(value).expanduser()).resolve())


# --- loading ---------------------------------------------------------------------------

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
    def fail(key: str, msg: str):
        raise PlanError(f"{path}: {key}: {msg}")

    if not isinstance(data, dict):
        raise PlanError(f"{path}: a plan is a YAML mapping (arches:, trees:, ...)")
    for k in data:
        if k not in TOP_KEYS:
            hint = f" (did you mean {PLURAL[k]}?)" if k in PLURAL and PLURAL[k] != k else ""
            fail(str(k), f"unknown key{hint}; known: {', '.join(sorted(TOP_KEYS))}")
    root_spec = data.get("root", ".")
    if not isinstance(root_spec, str):
        fail("root", "must be a directory path")
    root = (path.parent / root_spec).resolve()
    if not root.is_dir():
        fail("root", f"{root} is not a directory")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        fail("name", f"{name!r}: use letters, digits, '.', '_' and '-'")

    axes: dict[str, list[Entry]] = {}
    for key in AXES:
        plural = PLURAL[key]
        raw = data.get(plural)
        if raw is None:
            raw = {"target": [DEFAULT_TARGET], "profile": ["default"], "series": ["none"],
                   "arch": None, "tree": None}[key]
            if raw is None:
                fail(plural, "missing (list at least one)")
        if not isinstance(raw, list) or not raw:
            fail(plural, "must be a non-empty list")
        entries = [_entry(key, v, f"{plural}[{i}]", fail, root, cli_options)
                   for i, v in enumerate(raw)]
        seen: set[str] = set()
        for i, e in enumerate(entries):
            if e.name in seen:
                fail(f"{plural}[{i}]", f"'{e.name}' is listed twice")
            seen.add(e.name)
        axes[key] = entries

    tests = _tests(data.get("tests"), "tests", fail)

    excludes = data.get("exclude") or []
    if not isinstance(excludes, list):
        fail("exclude", "must be a list of {axis: name} mappings")
    excl = [_match(x, f"exclude[{i}]", fail, axes) for i, x in enumerate(excludes)]

    cells: list[Cell] = []
    for combo in product(*(axes[k] for k in AXES)):
        values = dict(zip(AXES, combo, strict=True))
        if any(all(values[k].name == v for k, v in m.items()) for m in excl):
            continue
        cells.append(_cell(values, tests))

    includes = data.get("include") or []
    if not isinstance(includes, list):
        fail("include", "must be a list of cells ({arch: ..., tree: ..., ...})")
    for i, inc in enumerate(includes):
        where = f"include[{i}]"
        if not isinstance(inc, dict):
            fail(where, "must be a mapping like {arch: x86_64, tree: '6.1'}")
        values = {}
        for k in inc:
            if k not in (*AXES, "tests"):
                fail(f"{where}.{k}", f"unknown key; known: {', '.join((*AXES, 'tests'))}")
        for k in AXES:
            if k not in inc:
                values[k] = axes[k][0]
                continue
            v = inc[k]
            named = next((e for e in axes[k] if e.name == str(v)), None)
            values[k] = named or _entry(k, v, f"{where}.{k}", fail, root, cli_options)
        inc_tests = _tests(inc["tests"], f"{where}.tests", fail) if "tests" in inc else tests
        cells.append(_cell(values, inc_tests))

    if not cells:
        fail("exclude", "every cell is excluded: the plan has no cells")
    by_name: dict[str, Cell] = {}
    for c in cells:
        if c.name in by_name:
            fail("include" if includes else "exclude",
                 f"two cells named '{c.name}' (the same combination twice, or names that "
                 f"collide: give the entries distinct names)")
        by_name[c.name] = c

    plan = Plan(path=path, name=name, root=root, axes=axes, cells=cells)
    comp = data.get("compare")
    if comp is not None:
        if not isinstance(comp, dict) or set(comp) != {"base", "new"}:
            fail("compare", "must be {base: {axis: name, ...}, new: {axis: name, ...}}")
        sides = {}
        for side in ("base", "new"):
            # Match against the cells, so a value that only an include adds is known too.
            m = _match(comp[side], f"compare.{side}", fail, axes, cells)
            if not plan.select(m):
                fail(f"compare.{side}", f"{comp[side]} matches no cell")
            sides[side] = m
        if {c.name for c in plan.select(sides["base"])} & \
                {c.name for c in plan.select(sides["new"])}:
            fail("compare", "a cell is on both sides (base and new must not overlap)")
        plan.compare = sides
    return plan


def _tests(raw, where: str, fail) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(t, str) and NAME_RE.match(t)
                                            for t in raw):
        fail(where, "must be a list of selftest binary names")
    return list(raw)


def _entry(key: str, v, where: str, fail, root: Path, cli_options) -> Entry:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)  # `- 6.1` in YAML is a float
    if key == "arch":
        if not isinstance(v, str) or archmod.ARCHES.get(v) is None:
            fail(where, f"{v!r} is not an arch ({', '.join(archmod.ARCHES)})")
        return Entry(name=v, value=v)
    if isinstance(v, str):
        v = {"tree": {"tree": v}, "series": {"path": v}, "profile": {"name": v},
             "target": {"target": v}}[key]
    if not isinstance(v, dict):
        fail(where, "must be a name or a mapping")
    allowed = {"tree": {"name", "tree", "base"}, "series": {"name", "path"},
               "profile": {"name", "debug", "configs"}, "target": {"name", "target"}}[key]
    for k in v:
        if k not in allowed:
            fail(f"{where}.{k}", f"unknown key; known: {', '.join(sorted(allowed))}")

    if key == "tree":
        spec = v.get("tree")
        if not isinstance(spec, str) or not spec:
            fail(f"{where}.tree", "missing: an embedded tree name "
                 f"({', '.join(EMBEDDED)}), a git checkout or a kernel tarball")
        if spec not in EMBEDDED and not (root / Path(spec).expanduser()).exists():
            fail(f"{where}.tree", f"{spec}: not an embedded tree ({', '.join(EMBEDDED)}) "
                 f"and no such path under {root}")
        base = v.get("base")
        if base is not None and not isinstance(base, str):
            base = str(base)
        name = v.get("name", spec.removeprefix("linux-") if spec in EMBEDDED
                     else Path(spec).name.split(".tar")[0])
        return _named(Entry(name=str(name), value=spec, base=base), where, fail)

    if key == "series":
        p = v.get("path")
        if not isinstance(p, str) or not p:
            fail(f"{where}.path", "missing: a series directory, an mbox, or none")
        if p != "none" and not (root / Path(p).expanduser()).exists():
            fail(f"{where}.path", f"{p}: no such file or directory under {root}")
        name = v.get("name", "none" if p == "none" else Path(p).name)
        return _named(Entry(name=str(name), value=p), where, fail)

    if key == "profile":
        name = v.get("name")
        if not isinstance(name, str):
            fail(f"{where}.name", "missing")
        debug = v.get("debug", name == "debug")
        if not isinstance(debug, bool):
            fail(f"{where}.debug", "must be true or false")
        configs = v.get("configs") or []
        if isinstance(configs, str):
            configs = [configs]
        if not isinstance(configs, list) or not all(isinstance(c, str) for c in configs):
            fail(f"{where}.configs", "must be a list of Kconfig fragment paths")
        if name not in ("default", "debug") and not debug and not configs:
            fail(where, f"profile '{name}' adds nothing: give debug: true or configs: [...]")
        return _named(Entry(name=name, debug=debug, configs=tuple(configs)), where, fail)

    # target: `qemu`, `ssh://[user@]host[:port]` (named after the host), or
    # {name: N, target: ssh://...}
    spec = v.get("target", v.get("name"))
    if not isinstance(spec, str):
        fail(f"{where}.target", "missing: qemu or ssh://[user@]host[:port]")
    if spec != DEFAULT_TARGET:
        if cli_options is not None and "--target" not in cli_options:
            fail(where, f"target '{spec}': this orch runs cells on {DEFAULT_TARGET} only")
        try:
            address = parse_address(spec)
        except UsageError as exc:
            fail(f"{where}.target", str(exc).removeprefix(f"--target {spec}: "))
        default_name = address.host + (f"-{address.port}" if address.port else "")
    else:
        default_name = DEFAULT_TARGET
    name = v.get("name", default_name)
    if not isinstance(name, str):
        fail(f"{where}.name", "must be a string")
    if (name == DEFAULT_TARGET) != (spec == DEFAULT_TARGET):
        fail(f"{where}.name", f"'{DEFAULT_TARGET}' names the QEMU target only")
    return _named(Entry(name=name, value=spec), where, fail)


def _named(e: Entry, where: str, fail) -> Entry:
    if not NAME_RE.match(e.name):
        fail(f"{where}.name", f"{e.name!r}: a cell-name part takes letters, digits, '.', "
             f"'_' and '-' (give the entry a name:)")
    return e


def _match(m, where: str, fail, axes: dict[str, list[Entry]],
           cells: list[Cell] | None = None) -> dict[str, str]:
    if not isinstance(m, dict) or not m:
        fail(where, "must be a mapping like {arch: arm64, profile: debug}")
    out = {}
    for k, v in m.items():
        if k not in AXES:
            fail(f"{where}.{k}", f"not an axis ({', '.join(AXES)})")
        v = str(v)
        known = {e.name for e in axes[k]}
        if cells is not None:
            known |= {c.axis(k).name for c in cells}
        if v not in known:
            fail(f"{where}.{k}", f"'{v}' is not on the {PLURAL[k]} axis "
                 f"({', '.join(sorted(known))})")
        out[k] = v
    return out


def _cell(values: dict[str, Entry], tests: list[str]) -> Cell:
    parts = [values["arch"].name, values["tree"].name]
    if values["series"].name != "none":
        parts.append(values["series"].name)
    if values["profile"].name != "default":
        parts.append(values["profile"].name)
    if values["target"].name != DEFAULT_TARGET:
        parts.append(values["target"].name)
    return Cell(name="-".join(parts), tests=list(tests), **values)


# --- output formats --------------------------------------------------------------------

def as_json(plan: Plan, given: str) -> str:
    doc = {
        "plan": given,
        "name": plan.name,
        "cells": [{**c.describe(), "run": f"orch run --plan {given} --cell {c.name}"}
                  for c in plan.cells],
        "compare": {side: [c.name for c in plan.select(m)]
                    for side, m in plan.compare.items()} if plan.compare else None,
    }
    return json.dumps(doc, indent=2) + "\n"


def as_github(plan: Plan, given: str) -> str:
    """One line for `$GITHUB_OUTPUT`, read with fromJSON() as a matrix: {"include": [...]}."""
    inc = [{"cell": c.name, "arch": c.arch.name, "tree": c.tree.name,
            "series": c.series.name, "profile": c.profile.name, "target": c.target.name}
           for c in plan.cells]
    return json.dumps({"include": inc}, separators=(",", ":")) + "\n"


GITLAB_HEADER = """\
# Generated by `orch plan {plan} --format gitlab`: a child pipeline, one job per cell, then
# merge (and compare). The .orch-* job templates are copied from {template}.
"""


def gitlab_templates(template: str, compare: bool = True) -> dict:
    """The hidden jobs (.orch-cell, .orch-merge, .orch-compare, what they extend) of the
    template file: copied into the child pipeline so that it includes nothing (a generated
    child pipeline that includes files depends on where and how it is run)."""
    p = Path(template)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise PlanError(f"--template {template}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PlanError(f"--template {template}: not valid YAML: {exc}") from None
    hidden = {k: v for k, v in (doc or {}).items() if isinstance(k, str) and k.startswith(".")}
    for need in (".orch-cell", ".orch-merge") + ((".orch-compare",) if compare else ()):
        if need not in hidden:
            raise PlanError(f"--template {template}: no {need} job template")
    return hidden


def as_gitlab(plan: Plan, given: str, template: str = "ci/gitlab-jobs.yml") -> str:
    doc: dict = {
        "stages": ["cells", "report"],
        "variables": {"ORCH_PLAN": given},
        **gitlab_templates(template, compare=plan.compare is not None),
    }
    for c in plan.cells:
        doc[c.name] = {"extends": ".orch-cell", "variables": {"ORCH_CELL": c.name}}
    doc["merge"] = {"extends": ".orch-merge",
                    "needs": [{"job": c.name, "artifacts": True} for c in plan.cells]}
    if plan.compare:
        base = [c.name for c in plan.select(plan.compare["base"])]
        new = [c.name for c in plan.select(plan.compare["new"])]
        doc["compare"] = {
            "extends": ".orch-compare",
            "needs": [{"job": n, "artifacts": True} for n in base + new],
            "variables": {"ORCH_BASE_CELLS": " ".join(base), "ORCH_NEW_CELLS": " ".join(new)},
        }
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)
    return GITLAB_HEADER.format(plan=given, template=template) + body


def as_names(plan: Plan, given: str, side: str | None = None) -> str:
    """Cell names, one a line: for shell loops (Jenkins, a compare side)."""
    if side:
        if not plan.compare:
            raise PlanError(f"{plan.path}: --side {side}: the plan has no compare: section")
        cells = plan.select(plan.compare[side])
    else:
        cells = plan.cells
    return "".join(f"{c.name}\n" for c in cells)


FORMATS = {"json": as_json, "github": as_github, "gitlab": as_gitlab, "names": as_names}


# --- commands --------------------------------------------------------------------------

# What a cell decides; `orch run --plan F --cell N` takes everything else from its own line.
CELL_OWNS = ("arches", "tree", "base", "series", "configs", "profiles", "tests", "target")


def cli_option_flags() -> set[str]:
    from orchestrator.options import OPTIONS, RUN

    return {f for o in OPTIONS if RUN in o.commands for f in o.flags}


def cell_command(args) -> list[str]:
    """`orch run --plan F --cell N [other options]` as the `orch run` words it stands for:
    the cell's options, then the user's own (output, accel, timeouts...)."""
    from orchestrator.options import RUN, command_line, options_for

    if not args.plan:
        raise UsageError("--cell needs --plan FILE")
    plan = load(args.plan, cli_options=cli_option_flags())
    if not args.cell:
        raise UsageError(f"--plan {args.plan}: give --cell NAME; cells: "
                         f"{', '.join(c.name for c in plan.cells)}")
    cell = plan.cell(args.cell)
    for o in options_for(RUN):
        if o.dest in CELL_OWNS and o.tokens(getattr(args, o.dest, None)) != \
                o.tokens(o.parsed_default(RUN)):
            raise UsageError(f"{o.flags[0]} cannot be combined with --plan: cell "
                             f"{cell.name} sets it (edit the plan, or run without --plan)")
    rest = command_line(RUN, args, keep=lambda o: o.dest not in (*CELL_OWNS, "plan", "cell"))
    return [RUN, *plan.cell_argv(cell), *rest[2:]]


def plan_cmd(args) -> int:
    plan = load(args.file, cli_options=cli_option_flags())
    if args.side and args.format != "names":
        raise UsageError("--side goes with --format names")
    if args.format == "gitlab":
        text = as_gitlab(plan, args.file, args.template)
    elif args.format == "names":
        text = as_names(plan, args.file, args.side)
    else:
        text = FORMATS[args.format](plan, args.file)
    sys.stdout.write(text)
    return 0
