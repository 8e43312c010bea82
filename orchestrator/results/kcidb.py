"""A results record as a KCIDB document (KernelCI's result database, schema v5.3).

- checkouts: one per (tree, base commit, series); `patchset_hash` is KCIDB's own formula
  (results.patchset_hash), `valid` says whether the series applied.
- builds: one per cell (arch and config profile on that checkout); status PASS when the
  kernel built, FAIL when it did not compile, MISS when an earlier stage stopped the run,
  ERROR when orch could not tell (the stage was interrupted).
- tests: one per testcase; path `orch.BINARY.CASE`. pass/fail/skip map to PASS/FAIL/SKIP.
  An error is ERROR when the test started and did not complete (it hung, died, or never
  reported), MISS when the harness kept it from running (SSH lost, a boot or rootfs stage
  failed). Stages before the build are not tests: they show in the checkout and build.
  A testcase's crash-triage records (`reports`) go into its `misc`.

Log paths are relative to the output directory, so they go into `misc` (KCIDB's
`log_url` must be an absolute URL).
"""

from __future__ import annotations

import json
import re

from orchestrator.results import coverage as rescov
from orchestrator.results.record import Cell, Record, TestCase

ORIGIN = "orch"
VERSION = {"major": 5, "minor": 3}
EXCERPT_MAX = 16384  # KCIDB's maxLength for log_excerpt

STATUS = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}
# error kinds where the test never got to run: the harness's fault
MISS_KINDS = {"ssh", "stage", "qemu"}
BUILD_STAGES = {"apply", "config", "build", "usage", "orch"}  # before there is a kernel

_PATH_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def _seg(text: str) -> str:
    return _PATH_UNSAFE.sub("_", text).strip("_") or "x"


def test_path(t) -> str:
    """KCIDB's dotted test path: `orch.BINARY.TEST` for orch's own; the kernel's own keep
    kselftest's names, `kselftest.mm.uffd-unit-tests.move.anon` (as KernelCI's
    kselftest-mm runs are named); `orch.STAGE` for a failed stage."""
    if t.kind == "stage":
        return f"orch.{_seg(t.binary.removeprefix('orch-'))}"
    if t.binary.startswith("kselftest."):
        parts = [*t.binary.split("."), *t.name.split(".")]
        return ".".join(_seg(p) for p in parts)
    return f"orch.{_seg(t.binary)}.{_seg(t.name)}"


def _id(*parts: str) -> str:
    return f"{ORIGIN}:" + ":".join(parts)


def checkout_id(cell: Cell) -> str:
    return _id(_seg(cell.tree), cell.base_commit or "unknown", cell.series_hash or "none")


def build_id(cell: Cell) -> str:
    return _id(cell.id)


def test_status(t: TestCase) -> str:
    if t.status in STATUS:
        return STATUS[t.status]
    return "MISS" if t.kind in MISS_KINDS else "ERROR"


def build_status(cell: Cell) -> str:
    stages = cell.stages
    b = stages.get("build", {}).get("status")
    if b == "ok":
        return "PASS"
    if b == "failed":
        return "FAIL"
    if b in (None, "skipped") and any(stages.get(s, {}).get("status") == "failed"
                                      for s in ("apply", "config")):
        return "MISS"
    return "ERROR"


def document(rec: Record) -> dict:
    checkouts: dict[str, dict] = {}
    builds: list[dict] = []
    tests: list[dict] = []
    for cell in rec.cells:
        cid = checkout_id(cell)
        if cid not in checkouts:
            co = {"id": cid, "origin": ORIGIN, "tree_name": cell.tree,
                  "patchset_hash": cell.series_hash,
                  "misc": {"series": cell.series, "series_spec": cell.series_spec,
                           "patches": cell.series_patches, "tree_spec": cell.tree_spec,
                           "head_commit": cell.head_commit}}
            if _HEX40.match(cell.base_commit):
                co["git_commit_hash"] = cell.base_commit
            if cell.base_ref:
                co["git_commit_name"] = cell.base_ref
            apply = cell.stages.get("apply", {}).get("status")
            if apply in ("ok", "failed"):
                co["valid"] = apply == "ok"
            checkouts[cid] = co
        b = {"id": build_id(cell), "checkout_id": cid, "origin": ORIGIN,
             "architecture": cell.arch, "config_name": cell.profile, "status":
             build_status(cell), "misc": {"cell": cell.id, "kernel_key": cell.kernel_key,
                                          "kernel_release": cell.kernel_release,
                                          "fragments": cell.fragments, "debug": cell.debug}}
        cov = rescov.cell_summary(rec.coverage, cell.id)
        if cov is not None:  # patch coverage (orch run --coverage)
            b["misc"]["coverage"] = cov | ({"not_run": rescov.not_run(rec.coverage, cell.id)}
                                           if cov["supported"] else {})
        if cell.compiler:
            b["compiler"] = cell.compiler
        secs = cell.stages.get("build", {}).get("seconds")
        if isinstance(secs, (int, float)):
            b["duration"] = float(secs)
        builds.append(b)
        for t in rec.tests_of(cell.id):
            if t.kind == "stage" and t.binary.removeprefix("orch-") in BUILD_STAGES:
                continue  # the build's (or checkout's) status says it
            path = test_path(t)
            test = {"id": _id(cell.id, t.binary, t.name), "build_id": b["id"],
                    "origin": ORIGIN, "path": path, "status": test_status(t),
                    "environment": {"comment": f"{cell.target_kind} {cell.target}"
                                    + (f" ({cell.accelerator})" if cell.accelerator else "")},
                    "misc": {"cell": cell.id, "kind": t.kind, "orch_status": t.status,
                             "file": t.file, "logs": t.logs}}
            if t.reports:  # crash triage: kind, title, file:line, patch, frames
                test["misc"]["reports"] = t.reports
            if t.duration is not None:
                test["duration"] = float(t.duration)
            excerpt = t.message
            if t.output:
                room = EXCERPT_MAX - len(excerpt) - 1
                excerpt = (excerpt + "\n" if excerpt else "") + (t.output[-room:] if room > 0
                                                                 else "")
            if excerpt:
                test["log_excerpt"] = excerpt.replace("\0", "")[:EXCERPT_MAX]
            tests.append(test)
    return {"version": dict(VERSION), "checkouts": list(checkouts.values()),
            "builds": builds, "tests": tests}


def dumps(rec: Record) -> bytes:
    return (json.dumps(document(rec), indent=2) + "\n").encode()
