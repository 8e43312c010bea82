"""The results page's series section: the record's coverage section (results.json schema
version 2, README "Patch coverage") as the page shows it.

Per cell: the series' added lines that are executable there and how many ran. Per patch,
in series order: its added lines, each marked run, not run or not executable, with the test
binaries that ran it (over every cell) and, per arch, where it ran (`x86_64: 12×`, or
`arm64: 3/4 cells` in a merge). The lines not run are listed first, each a link to its
line in its patch. A record without the section has none: the page says "no coverage in
this run".
"""

from __future__ import annotations

from orchestrator.results import coverage as rescov
from orchestrator.results.record import Record

STATUS_TEXT = {"run": "run", "not_run": "not run", "not_executable": "not executable"}


def _line(p_anchor: str, j: int, ln: dict, arch_of: dict[str, str]) -> dict:
    cells = ln.get("cells") or {}
    ran_by: dict[str, None] = {}
    for got in cells.values():
        for name in (got.get("ran_by") or []) if isinstance(got, dict) else []:
            ran_by.setdefault(name, None)
    status = ln.get("status", "not_executable")
    return {"anchor": f"{p_anchor}-{j}", "file": ln.get("file", ""),
            "line": ln.get("line", 0), "function": ln.get("function", ""),
            "text": ln.get("text", ""), "status": status,
            "cls": status.replace("_", "-"), "status_text": STATUS_TEXT.get(status, status),
            "ran_by": sorted(ran_by), "where": rescov.where_ran(ln, arch_of) if cells else ""}


def view(cov: dict | None, rec: Record) -> dict | None:
    """The coverage section as the page shows it; None when the record has none."""
    if not isinstance(cov, dict):
        return None
    arch_of = {c.id: c.arch for c in rec.cells}
    cells = {}
    for cid, c in (cov.get("cells") or {}).items():
        c = c if isinstance(c, dict) else {}
        supported = c.get("supported", True)
        cells[cid] = {"executable": c.get("executable", 0), "run": c.get("run", 0),
                      "supported": supported, "why": c.get("why", ""),
                      "pct": rescov.pct(c.get("run", 0), c.get("executable", 0))
                      if supported else "not supported"}
    patches, not_run = [], []
    for p in cov.get("patches") or []:
        anchor = f"patch-{p.get('index', len(patches) + 1)}"
        lines = [_line(anchor, j, ln, arch_of) for j, ln in enumerate(p.get("lines") or [], 1)]
        view_p = {"anchor": anchor, "index": p.get("index", len(patches) + 1),
                  "name": p.get("name", ""), "subject": p.get("subject", ""),
                  "dirty": bool(p.get("dirty")), "executable": p.get("executable", 0),
                  "run": p.get("run", 0),
                  "pct": rescov.pct(p.get("run", 0), p.get("executable", 0)),
                  "lines": lines, "not_run": sum(1 for x in lines if x["status"] == "not_run")}
        patches.append(view_p)
        not_run += [(view_p, x) for x in lines if x["status"] == "not_run"]
    executable = sum(p["executable"] for p in patches)
    run = sum(p["run"] for p in patches)
    return {"tool": cov.get("tool", ""), "profiled": cov.get("profiled") or [],
            "cells": cells, "patches": patches, "not_run": not_run,
            "executable": executable, "run": run, "pct": rescov.pct(run, executable)}


def compare_lines(cov: dict | None) -> dict | None:
    """orch compare's coverage part (lines gained: not run -> run, and lost), when it has
    one: each line by file, text and patch (line numbers move between versions)."""
    if not isinstance(cov, dict):
        return None
    out = {}
    for side in ("gained", "lost"):
        out[side] = [{"file": x.get("file", ""), "line": x.get("line", ""),
                      "text": x.get("text", ""), "patch": x.get("patch", ""),
                      "function": x.get("function", "")}
                     for x in cov.get(side) or [] if isinstance(x, dict)]
    return out
