"""Patch coverage as data: the `coverage` section of results.json (schema version 2, the
contract in README "Patch coverage"), and what is rendered from it: summary.md's table and
lines not run, Cobertura XML, JUnit properties, KCIDB misc, the union of `orch merge` and
the lines gained and lost of `orch compare`. Pure functions over dicts.

    {"tool": "gcov", "profiled": [files],
     "cells": {CELL: {"executable", "run", "supported", "why", "profiled"}},
     "patches": [{"index", "name", "subject", "dirty", "executable", "run",
                  "lines": [{"file", "line", "function", "text", "status",
                             "cells": {CELL: {"count", "ran_by"}}}]}]}
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

from orchestrator.base.files import write_bytes

RUN, NOT_RUN, NOT_EXECUTABLE = "run", "not_run", "not_executable"
COBERTURA = "coverage.xml"  # in the output directory
NOT_RUN_MAX = 200  # lines not run listed in summary.md


def status(cells: dict) -> str:
    if any(c["count"] > 0 for c in cells.values()):
        return RUN
    return NOT_RUN if cells else NOT_EXECUTABLE


def section(patches: list[dict], cells: dict[str, dict]) -> dict:
    """The section from the series' added lines and each cell's counts.

    patches: [{index, name, subject, dirty, lines: [{file, line, text}]}], in series order.
    cells: {cell id: {supported, why, profiled, lines: {(file, line): {count, ran_by,
    function}}}}: a cell's counts of the profiled files' executable lines."""
    out_patches = []
    for p in patches:
        lines = []
        for ln in p["lines"]:
            key = (ln["file"], ln["line"])
            per = {cid: {"count": c["lines"][key]["count"],
                         "ran_by": list(c["lines"][key]["ran_by"])}
                   for cid, c in cells.items() if key in c.get("lines", {})}
            function = next((c["lines"][key].get("function", "") for c in cells.values()
                             if key in c.get("lines", {})), "")
            lines.append({"file": ln["file"], "line": ln["line"], "function": function,
                          "text": ln["text"], "status": status(per), "cells": per})
        out_patches.append({k: p[k] for k in ("index", "name", "subject", "dirty")} |
                           {"lines": lines})
    sec = {"tool": "gcov",
           "profiled": sorted({f for c in cells.values() for f in c.get("profiled", [])}),
           "cells": {cid: {"supported": c.get("supported", True), "why": c.get("why", ""),
                           "profiled": list(c.get("profiled", []))}
                     for cid, c in cells.items()},
           "patches": out_patches}
    return totals(sec)


def totals(sec: dict) -> dict:
    """Fill in the counts (per patch: union over cells; per cell), from the lines."""
    per_cell: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in sec["patches"]:
        ex = [ln for ln in p["lines"] if ln["status"] != NOT_EXECUTABLE]
        p["executable"] = len(ex)
        p["run"] = sum(1 for ln in ex if ln["status"] == RUN)
        for ln in ex:
            for cid, c in ln["cells"].items():
                per_cell[cid][0] += 1
                per_cell[cid][1] += c["count"] > 0
    for cid, c in sec["cells"].items():
        if c.get("supported", True):
            c["executable"], c["run"] = per_cell[cid]
    return sec


def patch_counts(sec: dict, cid: str) -> list[dict]:
    """Per patch, one cell's executable and run lines."""
    out = []
    for p in sec["patches"]:
        mine = [ln["cells"][cid] for ln in p["lines"] if cid in ln["cells"]]
        out.append({"name": p["name"], "executable": len(mine),
                    "run": sum(1 for c in mine if c["count"] > 0)})
    return out


def cell_summary(sec: dict | None, cid: str) -> dict | None:
    """A cell's coverage in a few keys (KCIDB misc, JUnit properties); None: none."""
    if not sec or cid not in sec.get("cells", {}):
        return None
    c = sec["cells"][cid]
    out = {"supported": c.get("supported", True), "why": c.get("why", "")}
    if out["supported"]:
        out |= {"executable": c.get("executable", 0), "run": c.get("run", 0),
                "patches": patch_counts(sec, cid)}
    return out


def not_run(sec: dict, cid: str, limit: int = 100) -> list[str]:
    """One cell's lines not run, `file:line function (patch)`, the first `limit`."""
    out = [f"{ln['file']}:{ln['line']} {ln['function'] or '?'} ({p['name']})"
           for p in sec["patches"] for ln in p["lines"]
           if cid in ln["cells"] and ln["cells"][cid]["count"] == 0]
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


def pct(run: int, executable: int) -> str:
    return f"{100.0 * run / executable:.1f}%" if executable else "–"


# --- orch merge, orch compare --------------------------------------------------------------

def union(sections: list[dict]) -> dict | None:
    """The coverage of many runs in one section: patches by name, lines by (file, line,
    text); a line is run when any cell ran it."""
    sections = [s for s in sections if s]
    if not sections:
        return None
    cells: dict[str, dict] = {}
    patches: dict[str, dict] = {}
    for s in sections:
        cells.update(s.get("cells", {}))
        for p in s.get("patches", []):
            into = patches.setdefault(p["name"], {**{k: p[k] for k in
                                                     ("index", "name", "subject", "dirty")},
                                                  "lines": []})
            known = {(ln["file"], ln["line"], ln["text"]): ln for ln in into["lines"]}
            for ln in p["lines"]:
                key = (ln["file"], ln["line"], ln["text"])
                if key in known:
                    known[key]["cells"].update(ln["cells"])
                    known[key]["function"] = known[key]["function"] or ln["function"]
                else:
                    into["lines"].append({**ln, "cells": dict(ln["cells"])})
    for p in patches.values():
        for ln in p["lines"]:
            ln["status"] = status(ln["cells"])
    sec = {"tool": "gcov",
           "profiled": sorted({f for s in sections for f in s.get("profiled", [])}),
           "cells": {cid: {k: v for k, v in c.items() if k not in ("executable", "run")}
                     for cid, c in cells.items()},
           "patches": sorted(patches.values(), key=lambda p: (p["dirty"], p["index"]))}
    return totals(sec)


def gained_lost(base: dict | None, new: dict | None) -> dict[str, list[dict]]:
    """Lines gained (not run in BASE, run in NEW) and lost (run, then not run), matched by
    (file, line text, patch name), since line numbers move between versions of a series;
    lines with the same key pair up in order."""
    def by_key(sec):
        out: dict[tuple, list[dict]] = defaultdict(list)
        for p in (sec or {}).get("patches", []):
            for ln in p["lines"]:
                out[(ln["file"], ln["text"].strip(), p["name"])].append(ln)
        return out
    b, n = by_key(base), by_key(new)
    gained, lost = [], []
    for key, new_lines in n.items():
        for bl, nl in zip(b.get(key, []), new_lines, strict=False):  # the pairs there are
            row = {"file": key[0], "patch": key[2], "text": nl["text"],
                   "base_line": bl["line"], "line": nl["line"],
                   "function": nl["function"] or bl["function"]}
            if bl["status"] == NOT_RUN and nl["status"] == RUN:
                gained.append(row)
            elif bl["status"] == RUN and nl["status"] == NOT_RUN:
                lost.append(row)
    return {"gained": gained, "lost": lost}


# --- views ---------------------------------------------------------------------------------

def counts_by_arch(ln: dict, arch_of: dict[str, str] | None = None) -> dict[str, list[int]]:
    """A line's count in each cell where it is executable, by arch (`arch_of`: cell id ->
    arch; else the cell id's first part)."""
    per: dict[str, list[int]] = {}
    for cid, c in ln["cells"].items():
        per.setdefault((arch_of or {}).get(cid, cid.split(".")[0]), []).append(c["count"])
    return per


def ran_where(ln: dict) -> str:
    """Which arches ran a line: `arm64, x86_64`."""
    return ", ".join(sorted(a for a, counts in counts_by_arch(ln).items()
                            if any(n > 0 for n in counts)))


def where_ran(ln: dict, arch_of: dict[str, str] | None = None) -> str:
    """Per arch, where the line ran: `x86_64: 12×; arm64: not run`, or in a merge of many
    cells of an arch `x86_64: 98/100 cells` (cells where it is not executable: not
    counted)."""
    parts = []
    for arch, counts in counts_by_arch(ln, arch_of).items():
        ran = sum(1 for n in counts if n > 0)
        if len(counts) == 1:
            parts.append(f"{arch}: {counts[0]}×" if ran else f"{arch}: not run")
        else:
            parts.append(f"{arch}: {ran}/{len(counts)} cells")
    return "; ".join(parts)


def summary_md(sec: dict | None) -> str:
    """summary.md's part: per patch, executable lines added and how many ran (union, then
    per cell), then every line not run: file:line, function, patch."""
    if not sec:
        return ""
    cids = list(sec["cells"])
    arches = [cid.split(".")[0] for cid in cids]
    head = arches if len(set(arches)) == len(arches) else cids
    lines = ["", "### Patch coverage: the lines each patch adds, run by the tests", "",
             "| # | patch | executable | run | % | " + " | ".join(head) + " |",
             "|---|---|---|---|---|" + "---|" * len(cids)]
    for p in sec["patches"]:
        per = []
        for cid in cids:
            c = sec["cells"][cid]
            if not c.get("supported", True):
                per.append("not supported")
                continue
            pc = next(x for x in patch_counts(sec, cid) if x["name"] == p["name"])
            per.append(f"{pc['run']}/{pc['executable']}")
        lines.append(f"| {p['index'] if not p['dirty'] else 'dirty'} | {p['name']} | "
                     f"{p['executable']} | {p['run']} | {pct(p['run'], p['executable'])} | "
                     + " | ".join(per) + " |")
    ex = sum(p["executable"] for p in sec["patches"])
    run = sum(p["run"] for p in sec["patches"])
    lines.append(f"| | **all** | {ex} | {run} | {pct(run, ex)} | " + " | ".join(
        f"{c.get('run', 0)}/{c.get('executable', 0)}" if c.get("supported", True) else "–"
        for c in sec["cells"].values()) + " |")
    for cid, c in sec["cells"].items():
        if not c.get("supported", True) or c.get("why"):
            lines.append(f"\n`{cid}`: {c.get('why') or 'not supported'}")
    missed = [(p, ln) for p in sec["patches"] for ln in p["lines"]
              if ln["status"] == NOT_RUN]
    if missed:
        lines += ["", f"Lines not run ({len(missed)}):", ""]
        for p, ln in missed[:NOT_RUN_MAX]:
            lines.append(f"- `{ln['file']}:{ln['line']}` {ln['function'] or '?'} "
                         f"({p['name']}): `{ln['text'].strip()[:100]}`")
        if len(missed) > NOT_RUN_MAX:
            lines.append(f"- ... and {len(missed) - NOT_RUN_MAX} more (results.json)")
    # A merge of several arches: the lines that ran on some of them only, and where.
    partly = [(p, ln) for p in sec["patches"] for ln in p["lines"] if ln["status"] == RUN
              and any(c["count"] == 0 for c in ln["cells"].values())] \
        if len(set(arches)) > 1 else []
    if partly:
        lines += ["", f"Lines run on some arches only ({len(partly)}):", ""]
        for p, ln in partly[:NOT_RUN_MAX]:
            lines.append(f"- `{ln['file']}:{ln['line']}` {ln['function'] or '?'} "
                         f"({p['name']}): run on {ran_where(ln)}: "
                         f"`{ln['text'].strip()[:100]}`")
    return "\n".join(lines) + "\n"


def compare_md(gl: dict[str, list[dict]]) -> str:
    if not gl["gained"] and not gl["lost"]:
        return "\nPatch coverage: no line gained or lost.\n"
    out = ["", f"#### Patch coverage: {len(gl['gained'])} line(s) gained, "
               f"{len(gl['lost'])} lost", "", "| | file:line | function | patch | line |",
           "|---|---|---|---|---|"]
    for what in ("lost", "gained"):
        for r in gl[what]:
            text = r["text"].strip()[:80].replace("|", "\\|")
            out.append(f"| {what} | `{r['file']}:{r['line']}` (was {r['base_line']}) | "
                       f"{r['function'] or '?'} | {r['patch']} | `{text}` |")
    return "\n".join(out) + "\n"


def cobertura(sec: dict, timestamp: int = 0) -> bytes:
    """Cobertura XML of the series' executable added lines (hits: summed over cells), the
    format GitLab shows in a merge request's diff and Jenkins' Coverage plugin reads.
    Paths are relative to the tree's top (`<source>.</source>`)."""
    files: dict[str, dict[int, int]] = defaultdict(dict)
    for p in sec["patches"]:
        for ln in p["lines"]:
            if ln["status"] != NOT_EXECUTABLE:
                files[ln["file"]][ln["line"]] = sum(c["count"] for c in ln["cells"].values())
    valid = sum(len(v) for v in files.values())
    covered = sum(1 for v in files.values() for h in v.values() if h > 0)
    rate = lambda c, v: f"{c / v:.4f}" if v else "1"  # noqa: E731
    root = ET.Element("coverage", {
        "line-rate": rate(covered, valid), "branch-rate": "0", "lines-covered": str(covered),
        "lines-valid": str(valid), "branches-covered": "0", "branches-valid": "0",
        "complexity": "0", "version": "orch", "timestamp": str(timestamp)})
    ET.SubElement(ET.SubElement(root, "sources"), "source").text = "."
    pkgs = ET.SubElement(root, "packages")
    by_dir: dict[str, list[str]] = defaultdict(list)
    for f in sorted(files):
        by_dir[str(PurePosixPath(f).parent)].append(f)
    for d, names in by_dir.items():
        pv = sum(len(files[f]) for f in names)
        pc = sum(1 for f in names for h in files[f].values() if h > 0)
        pkg = ET.SubElement(pkgs, "package", {"name": d, "line-rate": rate(pc, pv),
                                              "branch-rate": "0", "complexity": "0"})
        classes = ET.SubElement(pkg, "classes")
        for f in names:
            fc = sum(1 for h in files[f].values() if h > 0)
            cls = ET.SubElement(classes, "class", {
                "name": PurePosixPath(f).name, "filename": f,
                "line-rate": rate(fc, len(files[f])), "branch-rate": "0", "complexity": "0"})
            ET.SubElement(cls, "methods")
            lines_el = ET.SubElement(cls, "lines")
            for n, hits in sorted(files[f].items()):
                ET.SubElement(lines_el, "line", {"number": str(n), "hits": str(hits),
                                                 "branch": "false"})
    return b'<?xml version="1.0" ?>\n' + ET.tostring(root) + b"\n"


def write_cobertura(out: Path, sec: dict | None) -> None:
    """OUT/coverage.xml of a section; none without coverage (an old one is removed: it
    would be read as this run's)."""
    if sec:
        write_bytes(out / COBERTURA, cobertura(sec))
    else:
        (out / COBERTURA).unlink(missing_ok=True)
