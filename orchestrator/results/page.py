"""The results page: one self-contained static HTML file (`report.html`), a view of a
results.json like junit.xml, summary.md and the KCIDB document.

Everything is inline (styles, no script, no font, no image): it opens from a CI artifact
with no server and no network. It shows the cells x test binaries matrix (counts in status
colours, each failing square a link to its failures), each failure with its crash records
(file:line, the patch that wrote the line, the frames) and an excerpt of its output or
kernel log, the compare view when the directory holds a compare.json (`orch compare`'s
data), and the series patch by patch from the record's coverage section (page_series.py).

It is rendered from the record as JSON (`Record.to_json()`, or the file itself), so a
section the record grows (coverage) reaches the page as the file has it. Plain and fast:
no per-test markup except for failures, excerpts cut, nothing laid out twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import jinja2

from orchestrator.base import files
from orchestrator.base.errors import UsageError, worst
from orchestrator.results import page_series
from orchestrator.results import record as results
from orchestrator.results.record import STATUSES, Record

FILENAME = "report.html"
COMPARE = "compare.json"  # orch compare's data, shown when the directory holds one
EXCERPT_LINES = 60  # the tail of a failure's output (its console or kernel log) shown
EXCERPT_CHARS = 6000
FRAMES_SHOWN = 12  # per crash record
CHANGES_SHOWN = 2000  # compare rows listed (the rest: compare.json)

_env = jinja2.Environment(loader=jinja2.PackageLoader("orchestrator.results", "templates"),
                          autoescape=True, trim_blocks=True, lstrip_blocks=True,
                          undefined=jinja2.StrictUndefined)


@dataclass
class Square:
    """One (cell, binary) square of the matrix."""

    text: str
    title: str
    cls: str  # pass | fail | skip | none
    href: str = ""


@dataclass
class Row:
    n: int
    cell: dict  # the cell as results.json has it
    squares: list[Square]
    result_href: str = ""  # the cell's stage failures, when it has any
    coverage: dict | None = None  # the coverage section's totals for this cell


@dataclass
class Failure:
    test: dict
    crashes: list[dict]
    excerpt: str
    excerpt_cut: int  # lines left out above the excerpt
    logs: list[tuple[str, str]]


@dataclass
class Group:
    n: int  # in the order the record has them
    anchor: str
    cell_n: int
    cell: str
    binary: str
    failures: list[Failure] = field(default_factory=list)


def _tally(counts: dict[str, int]) -> tuple[str, str, str]:
    """(text, title, class) of a square: `11✓ 1✗ 2s`."""
    bad = counts["fail"] + counts["error"]
    parts = [f"{counts['pass']}✓"] if counts["pass"] else []
    parts += [f"{bad}✗"] if bad else []
    parts += [f"{counts['skip']}s"] if counts["skip"] else []
    title = ", ".join(f"{counts[k]} {w}" for k, w in
                      (("pass", "passed"), ("fail", "failed"), ("skip", "skipped"),
                       ("error", "errors")))
    cls = "fail" if bad else "pass" if counts["pass"] else "skip"
    return " ".join(parts) or "0", title, cls


class Links:
    """Log paths of the record (relative to `base`, the directory of its results.json) as
    links from the page's directory."""

    def __init__(self, base: Path | None, page_dir: Path | None):
        self.prefix = ""
        if base is not None and page_dir is not None:
            rel = os.path.relpath(base.resolve(), page_dir.resolve())
            self.prefix = "" if rel == "." else rel + "/"

    def __call__(self, path: str) -> str:
        return quote(self.prefix + path) if path else ""


def excerpt(text: str) -> tuple[str, int]:
    """The tail of a failure's output: the last EXCERPT_LINES lines, EXCERPT_CHARS at
    most; and the number of lines left out."""
    lines = text.rstrip("\n").splitlines()
    tail = lines[-EXCERPT_LINES:]
    while len(tail) > 1 and sum(len(x) + 1 for x in tail) > EXCERPT_CHARS:
        tail = tail[1:]
    return "\n".join(tail), len(lines) - len(tail)


def crash(report: dict) -> dict:
    """A crash record as the page shows it: where (the header's file:line, else the site's
    or the first frame with a file), the patch that wrote it, and its frames."""
    frames = [f for f in report.get("frames", []) if isinstance(f, dict)]
    where, patch = "", ""
    if report.get("file"):
        where, patch = f"{report['file']}:{report.get('line', 0)}", report.get("patch", "")
    else:
        site = next((f for f in frames if f.get("file") and not f.get("guess")), None) or \
            next((f for f in frames if f.get("file")), None)
        if site:
            where, patch = f"{site['file']}:{site.get('line', 0)}", site.get("patch", "")
    via = next((f for f in frames if f.get("patch")), None) if not patch else None
    rows = [{"symbol": f"{f.get('function', '?')}+{f.get('offset', '')}/{f.get('size', '')}",
             "where": f"{f['file']}:{f.get('line', 0)}" if f.get("file") else "",
             "patch": f.get("patch", ""), "guess": bool(f.get("guess"))}
            for f in frames[:FRAMES_SHOWN]]
    return {"title": report.get("title", ""), "kind": report.get("kind", ""),
            "where": where, "patch": patch, "fatal": report.get("fatal", ""),
            "via": f"{via['function']} ({via.get('file', '')}:{via.get('line', 0)}, patch "
                   f"{via['patch']})" if via else "",
            "frames": rows, "more_frames": max(0, len(frames) - FRAMES_SHOWN),
            "text": report.get("text", "")}


def matrix(rec: Record, link: Links) -> tuple[list[str], list[Row], list[Group]]:
    """The binaries (columns), one row per cell, and the failure groups (cell, binary) the
    failing squares link to, in one pass over the testcases."""
    index = {c.id: i for i, c in enumerate(rec.cells)}
    binaries: dict[str, None] = {}
    counts: dict[tuple[int, str], dict[str, int]] = {}
    first_log: dict[tuple[int, str], str] = {}
    groups: dict[tuple[int, str], Group] = {}
    for t in rec.tests:
        i = index[t.cell]
        if not t.binary.startswith("orch-"):
            binaries.setdefault(t.binary, None)
        key = (i, t.binary)
        c = counts.setdefault(key, dict.fromkeys(STATUSES, 0))
        c[t.status] += 1
        if key not in first_log and "output" in t.logs:
            first_log[key] = link(t.logs["output"])
        if t.status in ("fail", "error"):
            g = groups.get(key)
            if g is None:
                n = len(groups)
                g = groups[key] = Group(n, f"fail-{i}-{n}", i, t.cell, t.binary)
            g.failures.append(failure(t.to_json(), link))
    stages: dict[int, Group] = {}  # a cell's first stage failure (binary orch-STAGE)
    for (i, b), g in groups.items():
        if b.startswith("orch-"):
            stages.setdefault(i, g)
    rows = []
    for i, c in enumerate(rec.cells):
        squares = []
        for b in binaries:
            got = counts.get((i, b))
            if got is None:
                squares.append(Square("–", "did not run", "none"))
                continue
            text, title, cls = _tally(got)
            href = groups[(i, b)].anchor if (i, b) in groups else ""
            squares.append(Square(text, title, cls, f"#{href}" if href else
                                  first_log.get((i, b), "")))
        stage = stages.get(i)
        rows.append(Row(i, c.to_json(), squares, f"#{stage.anchor}" if stage else ""))
    order = sorted(groups.values(), key=lambda g: (g.cell_n, g.n))
    return list(binaries), rows, order


def failure(t: dict, link: Links) -> Failure:
    text, cut = excerpt(t.get("output", ""))
    if not text and t.get("reports"):
        text, cut = excerpt(t["reports"][0].get("text", ""))
    return Failure(t, [crash(r) for r in t.get("reports", []) if isinstance(r, dict)],
                   text, cut, [(k, link(v)) for k, v in t.get("logs", {}).items()])


def compare_view(data: dict | None) -> dict | None:
    """orch compare's data (compare.json) as the page shows it: the pairs with their class
    counts, then what changed (a binary new or gone as a whole is one row)."""
    if not data:
        return None
    from_pair: dict[tuple, list[dict]] = {}
    for ch in data.get("changes", []):
        from_pair.setdefault((ch.get("base_cell"), ch.get("new_cell")), []).append(ch)
    rows = []
    for (b, n), changes in from_pair.items():
        for binary in dict.fromkeys(ch["binary"] for ch in changes):
            of = [ch for ch in changes if ch["binary"] == binary]
            classes = {ch["cls"] for ch in of}
            if len(of) > 1 and classes in ({"gone"}, {"new"}):
                cls = classes.pop()
                side = [ch["base" if cls == "gone" else "new"] for ch in of]
                tally = ", ".join(f"{side.count(x)} {x}" for x in dict.fromkeys(side))
                rows.append({"cls": cls, "base_cell": b, "new_cell": n, "binary": binary,
                             "name": f"(all {len(of)} tests)", "base": tally if cls == "gone"
                             else "–", "new": tally if cls == "new" else "–", "message": ""})
                continue
            rows += [ch for ch in of if ch["cls"] != "unchanged"]
    classes = list(data.get("counts", {}))
    rank = {c: i for i, c in enumerate(classes)}
    rows.sort(key=lambda r: rank.get(r["cls"], len(rank)))
    pairs = [{"base": p.get("base"), "new": p.get("new"), "by": p.get("by", ""),
              "counts": {k: (p.get("counts") or {}).get(k, 0) for k in classes}}
             for p in data.get("pairs", [])]
    return {"base": data.get("base", ""), "new": data.get("new", ""),
            "exit_code": data.get("exit_code"), "counts": data.get("counts", {}),
            "classes": classes, "pairs": pairs,
            "rows": rows[:CHANGES_SHOWN], "rows_left": max(0, len(rows) - CHANGES_SHOWN),
            "coverage": page_series.compare_lines(data.get("coverage"))}


def render(data: dict, compare: dict | None = None, link: Links | None = None,
           where: str = "results.json") -> str:
    """The page for one record (results.json's content) and, optionally, compare.json's."""
    rec = Record.from_json(data, where)
    link = link or Links(None, None)
    binaries, rows, groups = matrix(rec, link)
    try:
        cov = page_series.view(data.get("coverage"), rec)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{where}: malformed coverage section ({exc!r})") from None
    try:
        cmp = compare_view(compare)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"malformed compare data ({exc!r})") from None
    if cov:
        for r in rows:
            r.coverage = cov["cells"].get(r.cell["id"])
    codes = [c.exit_code for c in rec.cells]
    code = None if not codes or None in codes else worst(*codes)
    total = dict.fromkeys(STATUSES, 0)
    for t in rec.tests:
        total[t.status] += 1
    return _env.get_template("page.html.j2").render(
        rec=rec, data=data, code=code, status=results.status_of(code), total=total,
        binaries=binaries, rows=rows, groups=groups,
        failures=sum(len(g.failures) for g in groups), cov=cov,
        compare=cmp)


def write(path: Path, data: dict, compare: dict | None = None, base: Path | None = None,
          where: str = results.FILENAME) -> None:
    """Write the page to `path`; log paths of the record are relative to `base` (default:
    the page's own directory). `where` names the record in an error."""
    html = render(data, compare, Links(base or path.parent, path.parent), where)
    files.write_text(path, html)


def read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read {what} ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not {what} (not a JSON object)")
    return data


def report(src: Path, out: Path | None = None, compare: bool = True) -> Path:
    """`orch report DIR`: the page of DIR's results.json (a run or a merge) as the file has
    it, with DIR's compare.json when there is one (`compare`), written to OUT (default
    DIR/report.html; OUT/report.html when OUT is a directory). orch run and orch merge
    call it (without compare) after writing results.json: the page is a view of the
    file, whatever sections it holds."""
    path = src if src.is_file() else src / results.FILENAME
    if not src.exists():
        raise UsageError(f"{src}: no such file or directory", stage="report")
    if not path.is_file():
        raise UsageError(f"{src}: not an orch output directory (no {results.FILENAME}; for "
                         f"a directory of runs: orch merge {src} -o OUT, then orch report "
                         f"OUT)", stage="report")
    try:
        data = read_json(path, "an orch results file")
        cmp_path = path.parent / COMPARE
        cmp = read_json(cmp_path, "orch compare's data") \
            if compare and cmp_path.is_file() else None
        out = out or path.parent / FILENAME
        if out.is_dir():
            out = out / FILENAME
        write(out, data, cmp, base=path.parent, where=str(path))
    except UsageError as exc:
        exc.stage = "report"
        raise
    return out
