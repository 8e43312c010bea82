"""The results record: what a run (or a merge of runs) found, as data.

A *cell* is what a run varies: arch, tree (name + base commit), series (name + content
hash), config profile (fragments + debug) and target (kind + name). A testcase belongs to
one cell and one test binary. `results.json` holds the cells and every testcase; JUnit,
summary.md, the results page, compare and KCIDB are all rendered from it (junit.py,
merge.py's summary_md, page.py, compare.py, kcidb.py), never from the run's internals.

Schema (version 1; 2 with a `coverage` section, results/coverage.py), see README
"results.json":
    {"schema": "orch-results", "schema_version": 1, "kind": "run"|"merge",
     "orch_version", "command", "created", "exit_code", "status",
     "cells": [Cell...], "tests": [TestCase...], "coverage": {...} (version 2)}
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orchestrator.base import files
from orchestrator.base.errors import (
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_TEST_FAILED,
    UsageError,
    worst,
)
from orchestrator.results import coverage_schema

SCHEMA = "orch-results"
SCHEMA_VERSION = 2  # what this orch reads; it writes 1 unless a record has coverage
FILENAME = "results.json"
STATUSES = ("pass", "fail", "skip", "error")
OUTPUT_CAP = 64 * 1024  # bytes of a testcase's output kept in the record and in JUnit

def status_of(code: int | None) -> str:
    if code is None:
        return "running"
    return {EXIT_PASS: "passed", EXIT_TEST_FAILED: "failed",
            EXIT_INTERRUPTED: "interrupted"}.get(code, "error")


_UNSAFE = re.compile(r"[^A-Za-z0-9_+@-]+")


def _part(text: str) -> str:
    # A cell id is dot-separated; dots inside a part are kept (linux-6.1) but nothing that
    # a file name, a JUnit classname or a Markdown table would choke on.
    return ".".join(p for p in (_UNSAFE.sub("-", x).strip("-") for x in text.split(".")) if p) \
        or "x"


@dataclass
class Cell:
    arch: str
    tree: str  # name: "linux-6.1", a checkout's directory name, a tarball's stem
    base_commit: str = ""
    base_ref: str = ""  # the user's --base, when given (part of the id: two bases, two cells)
    series: str = "none"  # name: the series directory or mbox stem, "none"
    series_hash: str = ""  # KCIDB patchset_hash of the patches, "" when none
    dirty_hash: str = ""  # sha256 of the checkout's uncommitted change (series "NAME+dirty")
    profile: str = "default"  # "default", "debug", plus --config fragment stems
    fragments: list[str] = field(default_factory=list)  # extra fragments (user's)
    debug: bool = False
    target_kind: str = "qemu"  # "qemu", or "ssh" for a machine orch does not start
    target: str = "qemu"  # the target's name: "qemu", or the ssh host[:port] as given
    # What the run learnt about the cell (not part of its identity).
    tree_spec: str = ""
    head_commit: str = ""
    series_spec: str = ""
    series_patches: int = 0
    kernel_release: str = ""
    kernel_key: str = ""
    accelerator: str = ""
    deploy: str = ""  # ssh targets: kexec, reboot-cmd, none (the machine's own kernel)
    compiler: str = ""
    exit_code: int | None = None
    status: str = "running"
    stages: dict = field(default_factory=dict)
    flaky: bool = False
    error: str = ""
    source: str = ""  # merge: the directory the cell came from (relative to OUT)

    @property
    def id(self) -> str:
        tree = self.tree + (f"@{self.base_ref}" if self.base_ref else "")
        return ".".join(_part(p) for p in (self.arch, tree, self.series, self.profile,
                                           self.target))

    def to_json(self) -> dict:
        d = asdict(self)
        return {"id": self.id, **d}

    @classmethod
    def from_json(cls, d: dict) -> "Cell":
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TestCase:
    cell: str  # Cell.id
    binary: str  # test binary ("uffd_move"), or "orch-STAGE" for a failed stage
    name: str
    status: str  # pass | fail | skip | error
    # What made the testcase: a KTAP test ("ktap"), a line of a known text format ("text"),
    # a program's exit code ("exit_code"), one of orch's checks ("dmesg_clean", "timeout",
    # "exit_status", "missing", "no_ktap"), a crash, a lost machine, a failed stage...
    # Readers accept kinds they do not know: a later orch may add some.
    kind: str = "ktap"
    message: str = ""  # failure: first failing line; skip: the reason; error: what broke
    duration: float | None = None  # seconds
    duration_source: str = ""  # "ktap" (the test's own time= line), "orch" (measured)
    file: str = ""  # the selftest source (selftests/uffd_move.c), or the stage's log
    logs: dict[str, str] = field(default_factory=dict)  # name -> path relative to the output
    output: str = ""  # the testcase's own lines (diagnostics), tail kept, OUTPUT_CAP
    # Kernel reports that failed it: [{kind, title, header, file, line, patch, fatal,
    # frames: [{function, offset, size, file, line, inlined, patch}], text}]
    reports: list[dict] = field(default_factory=list)

    @property
    def classname(self) -> str:
        return f"{self.cell}.{self.binary}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "TestCase":
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in names})


def cap(text: str, limit: int = OUTPUT_CAP) -> str:
    """The tail of `text`, at most `limit` bytes of UTF-8, saying how much was cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    tail = data[-limit:].decode(errors="ignore")
    return f"[... {len(data) - len(tail.encode())} bytes cut, full log in the output " \
           f"directory ...]\n{tail}"


@dataclass
class Record:
    cells: list[Cell] = field(default_factory=list)
    tests: list[TestCase] = field(default_factory=list)
    kind: str = "run"  # "run" | "merge"
    command: str = ""
    created: str = ""
    orch_version: str = ""
    coverage: dict | None = None  # --coverage: patch coverage (results/coverage.py)

    @property
    def exit_code(self) -> int | None:
        codes = [c.exit_code for c in self.cells]
        if not codes or any(c is None for c in codes):
            return None
        return worst(*codes)

    def cell(self, cid: str) -> Cell:
        return next(c for c in self.cells if c.id == cid)

    def tests_of(self, cid: str) -> list[TestCase]:
        return [t for t in self.tests if t.cell == cid]

    def counts(self, cid: str | None = None, binary: str | None = None) -> dict[str, int]:
        c = dict.fromkeys(STATUSES, 0)
        for t in self.tests:
            if (cid is None or t.cell == cid) and (binary is None or t.binary == binary):
                c[t.status] += 1
        return c

    def binaries(self, cid: str | None = None) -> list[str]:
        seen: dict[str, None] = {}
        for t in self.tests:
            if cid is None or t.cell == cid:
                seen.setdefault(t.binary, None)
        return list(seen)

    def to_json(self) -> dict:
        code = self.exit_code
        return {
            "schema": SCHEMA,
            "schema_version": 2 if self.coverage else 1,
            "kind": self.kind,
            "orch_version": self.orch_version,
            "command": self.command,
            "created": self.created,
            "exit_code": code,
            "status": status_of(code),
            "cells": [c.to_json() for c in self.cells],
            "tests": [t.to_json() for t in self.tests],
            **({"coverage": self.coverage} if self.coverage else {}),
        }

    @classmethod
    def from_json(cls, d: dict, where: str = "results.json") -> "Record":
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise UsageError(f"{where}: not an orch results file (no \"schema\": \"{SCHEMA}\")")
        v = d.get("schema_version")
        if not isinstance(v, int) or v > SCHEMA_VERSION:
            raise UsageError(f"{where}: schema_version {v!r} is newer than this orch reads "
                             f"({SCHEMA_VERSION})")
        try:
            rec = cls(cells=[Cell.from_json(c) for c in d["cells"]],
                      tests=[TestCase.from_json(t) for t in d["tests"]],
                      kind=d.get("kind", "run"), command=d.get("command", ""),
                      created=d.get("created", ""), orch_version=d.get("orch_version", ""),
                      coverage=d.get("coverage") or None)
        except (KeyError, TypeError) as exc:
            raise UsageError(f"{where}: malformed results record ({exc})") from None
        if rec.coverage is not None and (why := coverage_schema.problem(rec.coverage)):
            raise UsageError(f"{where}: malformed coverage section ({why})")
        bad = next((t for t in rec.tests if t.status not in STATUSES), None)
        if bad:
            raise UsageError(f"{where}: testcase {bad.binary}/{bad.name} has status "
                             f"{bad.status!r} (not one of {', '.join(STATUSES)})")
        ids = {c.id for c in rec.cells}
        stray = next((t for t in rec.tests if t.cell not in ids), None)
        if stray:
            raise UsageError(f"{where}: testcase {stray.binary}/{stray.name} names unknown "
                             f"cell {stray.cell}")
        return rec


def write(path: Path, record: Record) -> None:
    files.write_json(path, record.to_json())


def load(path: Path) -> Record:
    """Read a results.json; a missing, unreadable or foreign file is a UsageError."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read results ({exc})") from None
    return Record.from_json(data, str(path))




def patchset_hash(patch_sha256s: list[str]) -> str:
    """KCIDB's patchset_hash: sha256 over the patches' newline-terminated sha256s, in
    order; "" for no patches (`sha256sum *.patch | cut -c-64 | sha256sum`)."""
    if not patch_sha256s:
        return ""
    return hashlib.sha256("".join(f"{h}\n" for h in patch_sha256s).encode()).hexdigest()
