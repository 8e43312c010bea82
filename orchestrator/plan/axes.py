"""The axes of a plan, as a table: one `Axis` record per axis (arches, trees, series,
profiles, targets) says how the plan writes an entry, how the entry is checked, what it adds
to a cell's name, to `orch plan --format json` and to the cell's `orch run` command line.
Adding an axis is adding one record to `AXES` (and the `orch run` option it sets)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from orchestrator.base.errors import UsageError
from orchestrator.kernel import arch as archmod
from orchestrator.kernel.tree import EMBEDDED
from orchestrator.targets.lava.target import LAVA_SPEC
from orchestrator.targets.ssh import parse_address

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


@dataclass(frozen=True)
class Where:
    """What checking an entry needs: the plan file (for messages), the directory relative
    paths start from, and the `orch run` options of this orch (None: do not check)."""

    path: Path
    root: Path
    cli_options: set[str] | None = None

    def fail(self, key: str, msg: str) -> NoReturn:
        """One line that names the file and the key."""
        raise PlanError(f"{self.path}: {key}: {msg}")


@dataclass(frozen=True)
class Axis:
    key: str  # the cell's key, as exclude:, include: and compare: write it
    plural: str  # the plan's key
    parse: Callable[[Any, str, Where], Entry]  # (entry, "trees[0]", where) -> Entry
    fields: Callable[[Entry], dict]  # what `--format json` shows of an entry
    argv: Callable[[Entry, Path], list[str]]  # the `orch run` options (root: the plan's)
    owns: tuple[str, ...]  # the `orch run` option dests a cell sets through this axis
    default: tuple[str, ...] | None = None  # entries when the plan has none (None: required)
    keys: tuple[str, ...] = ()  # an entry's mapping keys ((): a name only)
    shorthand: str = ""  # the key a bare name stands for
    implicit: str | None = None  # the entry name that cell names leave out

    def entry(self, v, where: str, at: Where) -> Entry:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)  # `- 6.1` in YAML is a float
        if self.keys:
            v = self._mapping(v, where, at)
        e = self.parse(v, where, at)
        if not NAME_RE.match(e.name):
            at.fail(f"{where}.name", f"{e.name!r}: a cell-name part takes letters, digits, "
                    f"'.', '_' and '-' (give the entry a name:)")
        return e

    def _mapping(self, v, where: str, at: Where) -> dict:
        if isinstance(v, str):
            v = {self.shorthand: v}
        if not isinstance(v, dict):
            at.fail(where, "must be a name or a mapping")
        for k in v:
            if k not in self.keys:
                at.fail(f"{where}.{k}", f"unknown key; known: {', '.join(sorted(self.keys))}")
        return v

    def in_name(self, e: Entry) -> bool:
        return e.name != self.implicit


def under(root: Path, value: str) -> str:
    """A plan path as `orch run` takes it: absolute, from the plan's root."""
    return str((root / Path(value).expanduser()).resolve())


# --- arches: a name from the arch table ----------------------------------------------------

def parse_arch(v, where: str, at: Where) -> Entry:
    if not isinstance(v, str) or archmod.ARCHES.get(v) is None:
        at.fail(where, f"{v!r} is not an arch ({', '.join(archmod.ARCHES)})")
    return Entry(name=v, value=v)


# --- trees: an embedded name, a checkout or a tarball; + base --------------------------------

def parse_tree(v: dict, where: str, at: Where) -> Entry:
    spec = v.get("tree")
    if not isinstance(spec, str) or not spec:
        at.fail(f"{where}.tree", "missing: an embedded tree name "
                f"({', '.join(EMBEDDED)}), a git checkout or a kernel tarball")
    if spec not in EMBEDDED and not (at.root / Path(spec).expanduser()).exists():
        at.fail(f"{where}.tree", f"{spec}: not an embedded tree ({', '.join(EMBEDDED)}) "
                f"and no such path under {at.root}")
    base = v.get("base")
    if base is not None and not isinstance(base, str):
        base = str(base)
    name = v.get("name", spec.removeprefix("linux-") if spec in EMBEDDED
                 else Path(spec).name.split(".tar")[0])
    return Entry(name=str(name), value=spec, base=base)


def tree_argv(e: Entry, root: Path) -> list[str]:
    argv = ["--tree", e.value if e.value in EMBEDDED else under(root, e.value)]
    return argv + (["--base", e.base] if e.base else [])


# --- series: a directory, an mbox, or none ---------------------------------------------------

def parse_series(v: dict, where: str, at: Where) -> Entry:
    p = v.get("path")
    if not isinstance(p, str) or not p:
        at.fail(f"{where}.path", "missing: a series directory, an mbox, or none")
    if p != "none" and not (at.root / Path(p).expanduser()).exists():
        at.fail(f"{where}.path", f"{p}: no such file or directory under {at.root}")
    name = v.get("name", "none" if p == "none" else Path(p).name)
    return Entry(name=str(name), value=p)


def series_argv(e: Entry, root: Path) -> list[str]:
    return ["--series", "none" if e.value == "none" else under(root, e.value)]


# --- profiles: default, debug, or {name, debug: true, configs: [...]} ------------------------

def parse_profile(v: dict, where: str, at: Where) -> Entry:
    name = v.get("name")
    if not isinstance(name, str):
        at.fail(f"{where}.name", "missing")
    debug = v.get("debug", name == "debug")
    if not isinstance(debug, bool):
        at.fail(f"{where}.debug", "must be true or false")
    configs = v.get("configs") or []
    if isinstance(configs, str):
        configs = [configs]
    if not isinstance(configs, list) or not all(isinstance(c, str) for c in configs):
        at.fail(f"{where}.configs", "must be a list of Kconfig fragment paths")
    if name not in ("default", "debug") and not debug and not configs:
        at.fail(where, f"profile '{name}' adds nothing: give debug: true or configs: [...]")
    return Entry(name=name, debug=debug, configs=tuple(configs))


def profile_argv(e: Entry, root: Path) -> list[str]:
    argv = []
    for c in e.configs:
        p = root / c
        argv += ["--config", str(p.resolve()) if p.exists() else c]
    return argv + (["--debug"] if e.debug else [])


# --- targets: qemu, ssh://[user@]host[:port] (named after the host), lava[+https://HOST],
# or {name, target} -------------------------------------------------------------------------

def parse_target(v: dict, where: str, at: Where) -> Entry:
    spec = v.get("target", v.get("name"))
    if not isinstance(spec, str):
        at.fail(f"{where}.target", "missing: qemu or ssh://[user@]host[:port]")
    default_name = DEFAULT_TARGET
    if spec != DEFAULT_TARGET:
        if at.cli_options is not None and "--target" not in at.cli_options:
            at.fail(where, f"target '{spec}': this orch runs cells on {DEFAULT_TARGET} only")
        lava = LAVA_SPEC.match(spec)
        if lava:  # lava (the local dispatcher), lava+https://HOST (a server)
            host = re.sub(r"^https?://", "", lava.group("url") or "").split("/")[0]
            default_name = "lava" + (f"-{host.replace(':', '-')}" if host else "")
        else:
            try:
                address = parse_address(spec)
            except UsageError as exc:
                at.fail(f"{where}.target", str(exc).removeprefix(f"--target {spec}: "))
            default_name = address.host + (f"-{address.port}" if address.port else "")
    name = v.get("name", default_name)
    if not isinstance(name, str):
        at.fail(f"{where}.name", "must be a string")
    if (name == DEFAULT_TARGET) != (spec == DEFAULT_TARGET):
        at.fail(f"{where}.name", f"'{DEFAULT_TARGET}' names the QEMU target only")
    return Entry(name=name, value=spec)


def target_argv(e: Entry, root: Path) -> list[str]:
    return ["--target", e.value] if e.value != DEFAULT_TARGET else []


# --- the table, in cell-name order ---------------------------------------------------------

AXES: tuple[Axis, ...] = (
    Axis("arch", "arches", parse_arch, owns=("arches",),
         fields=lambda e: {"arch": e.name},
         argv=lambda e, root: ["--arch", e.name]),
    Axis("tree", "trees", parse_tree, owns=("tree", "base"),
         keys=("name", "tree", "base"), shorthand="tree",
         fields=lambda e: {"tree": e.name, "tree_spec": e.value, "base": e.base},
         argv=tree_argv),
    Axis("series", "series", parse_series, owns=("series",), default=("none",),
         keys=("name", "path"), shorthand="path", implicit="none",
         fields=lambda e: {"series": e.name, "series_path": e.value},
         argv=series_argv),
    Axis("profile", "profiles", parse_profile, owns=("configs", "profiles"),
         default=("default",), keys=("name", "debug", "configs"), shorthand="name",
         implicit="default",
         fields=lambda e: {"profile": e.name, "debug": e.debug, "configs": list(e.configs)},
         argv=profile_argv),
    Axis("target", "targets", parse_target, owns=("target",), default=(DEFAULT_TARGET,),
         keys=("name", "target"), shorthand="target", implicit=DEFAULT_TARGET,
         fields=lambda e: {"target": e.name},
         argv=target_argv),
)
BY_KEY = {a.key: a for a in AXES}
KEYS = tuple(BY_KEY)  # ("arch", "tree", "series", "profile", "target")
