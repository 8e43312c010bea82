"""Crash triage: a kernel report's frames to `file:line`, and each line to the patch of the
series that wrote it.

- `file:line`: the kernel's own `scripts/faddr2line` (taken from the tested commit, so it
  matches the tree) on the objects of the frames, compiled again with DWARF when a report
  appears (kernel/debuginfo.py), or on the stored `vmlinux` of a kernel whose config has
  debug info. It checks each frame's `/0xlen` against the symbol's size, so a frame is
  never decoded against other code. A WARNING or `kernel BUG at` header carries its own
  `file:line` (no debug info needed).
- the patch: `git blame` of that line at the tested commit, in orch's clone (the series is
  applied as one commit per patch, the checkout's uncommitted change as the last one).

`summary` is the line a failure message leads with:
`KASAN: use-after-free in move_pages_pte (mm/userfaultfd.c:1083, patch 0003-...)`.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from orchestrator.base.runner import Runner
from orchestrator.kernel import debuginfo
from orchestrator.store import cache
from orchestrator.testing.reports import Frame, Report, parse

# faddr2line's output: "f+0x1/0x2:" then "f at mm/x.c:12" and "(inlined by) g at ...".
LOC_RE = re.compile(r"^(\(inlined by\) )?(\S+) at (\S+?):(\d+)")
BUILD_DIR_RE = re.compile(r"/\.orch-build-[^/]+/(.*)$")
GUESS_BUDGET = 20.0  # seconds of compiles for objects only guessed frames are in
MAX_FRAMES = 8  # per report: the frames decoded (each may be an object to compile)
HEAD_RE = re.compile(r"^(\S+)\+(0x[0-9a-f]+)/(0x[0-9a-f]+):$")


@dataclass
class Source:
    """What a report is decoded against: the tested commit, its series' commits, and the
    stored kernel's vmlinux (None: no debug info, frames keep their function only)."""

    repo: Path | None  # git dir of the commits (orch's clone, or the imported repository)
    head: str
    patches: dict[str, str] = field(default_factory=dict)  # commit -> patch name
    touched: set[str] = field(default_factory=set)  # files the series (and dirty) changed
    vmlinux: Path | None = None  # the stored kernel's, when its config has DWARF
    builddir: Path | None = None  # else: the build's objects, compiled again with -g
    srctree: Path | None = None  # the sources at `head` (orch's worktree)
    cross_compile: str = ""


def touched(repo: Path, base: str, head: str, runner: Runner) -> set[str]:
    """The files that the commits base..head changed."""
    res = runner.run(["git", "--git-dir", str(repo), "diff", "--name-only", base, head],
                     always=True)
    return set(res.output.split()) if res.ok else set()


def patch_commits(repo: Path, base: str, head: str, names: list[str],
                  runner: Runner) -> dict[str, str]:
    """The series' commits (base..head, in order) -> their patch names. Names in the
    order they were applied; a count that does not match names nothing."""
    res = runner.run(["git", "--git-dir", str(repo), "rev-list", "--reverse",
                      f"{base}..{head}"], always=True)
    commits = res.output.split() if res.ok else []
    if len(commits) != len(names):
        return {}
    return dict(zip(commits, names, strict=True))


@contextmanager
def _script(src: Source, runner: Runner) -> Iterator[Path | None]:
    """The tested commit's scripts/faddr2line, as a scratch file."""
    got = runner.run(["git", "--git-dir", str(src.repo), "show",
                      f"{src.head}:scripts/faddr2line"], always=True) if src.repo else None
    if got is None or not got.ok:
        yield None
        return
    script = cache.subdir("tmp") / f"faddr2line-{os.getpid()}"
    script.write_text(got.output)
    try:
        yield script
    finally:
        script.unlink(missing_ok=True)


def _faddr2line(src: Source, script: Path, objfile: Path, symbols: list[str],
                runner: Runner) -> dict[str, list[dict]]:
    """symbol (f+0x1/0x2) -> its locations, innermost first: [{function, file, line}]."""
    res = runner.run(["bash", str(script), str(objfile), *symbols], always=True,
                     env={"CROSS_COMPILE": src.cross_compile}, timeout=300)
    out: dict[str, list[dict]] = {}
    cur = None
    for line in res.output.splitlines():
        line = line.strip()
        h = HEAD_RE.match(line)
        if h:
            # faddr2line prints the offset as given: match the frame by function + size.
            cur = out.setdefault(f"{h.group(1)}+{int(h.group(2), 16):#x}/"
                                 f"{int(h.group(3), 16):#x}", [])
            continue
        m = LOC_RE.match(line)
        if m and cur is not None:
            cur.append({"function": m.group(2), "file": _relative(m.group(3)),
                        "line": int(m.group(4))})
    return out


def _locations(src: Source, frames: list[Frame], runner: Runner) -> dict[str, list[dict]]:
    """Every frame's locations: from the stored vmlinux when the kernel has DWARF, else
    from the frames' objects compiled again with -g (debuginfo.py)."""
    with _script(src, runner) as script:
        if script is None:
            return {}
        if src.vmlinux:
            return _faddr2line(src, script, src.vmlinux, sorted({_norm(f) for f in frames}),
                               runner)
        if not src.builddir:
            return {}
        objects = debuginfo.objects_for(src.builddir, {_key(f) for f in frames},
                                        src.cross_compile, runner, src.srctree, src.touched)
        by_object: dict[str, list[str]] = {}
        rank: dict[str, int] = {}
        for f in frames:  # every offset: two frames may be in one function
            if _key(f) in objects:
                obj = objects[_key(f)]
                by_object.setdefault(obj, []).append(_norm(f))
                # First the objects the series changed, then reliable frames', then guesses'.
                r = 0 if str(Path(obj).with_suffix(".c")) in src.touched else 2 if f.guess else 1
                rank[obj] = min(rank.get(obj, r), r)
        out: dict[str, list[dict]] = {}
        scratch = cache.subdir("tmp") / f"debuginfo-{os.getpid()}"
        scratch.mkdir(exist_ok=True)
        start = time.monotonic()
        try:
            for i, obj in enumerate(sorted(by_object, key=lambda o: (rank[o], o))):
                if rank[obj] == 2 and time.monotonic() - start > GUESS_BUDGET:
                    break  # guessed frames (stale addresses among them) get a time budget
                dbg = scratch / f"{i}-{Path(obj).name}"
                if debuginfo.compile_with_debug(src.builddir, obj, dbg, runner):
                    out.update(_faddr2line(src, script, dbg, sorted(set(by_object[obj])),
                                           runner))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return out


def _relative(path: str) -> str:
    """A path as the tree names it. faddr2line strips the build's own prefix; an object
    that ccache compiled in another worktree still names that one's build dir
    (`/.../.orch-build-x86_64/../mm/x.c`), and an out-of-tree build leaves `../`."""
    m = BUILD_DIR_RE.search(path)
    p = os.path.normpath(m.group(1) if m else path)
    while p.startswith("../"):
        p = p[3:]
    return p


def _blame(src: Source, file: str, line: int, runner: Runner,
           memo: dict[tuple[str, int], str]) -> str:
    key = (file, line)
    if key not in memo:
        memo[key] = ""
        if src.patches and src.repo:
            res = runner.run(["git", "--git-dir", str(src.repo), "blame", "--porcelain",
                              "-L", f"{line},{line}", src.head, "--", file], always=True)
            commit = res.output.split(" ", 1)[0] if res.ok and res.output else ""
            memo[key] = src.patches.get(commit, "")
    return memo[key]


def decode(reports: list[Report], src: Source, runner: Runner) -> None:
    """Fill in every frame's file:line and patch (and a header's patch), in place."""
    frames = [f for r in reports for f in r.frames]
    # The frames worth a compile: not the reporting machinery, the first few of each.
    worth = [f for r in reports for f in [f for f in r.frames if not f.internal][:MAX_FRAMES]]
    locs = _locations(src, worth, runner)
    memo: dict[tuple[str, int], str] = {}
    for f in frames:
        chain = locs.get(_norm(f), [])
        if not chain:
            continue
        f.file, f.line = chain[0]["file"], chain[0]["line"]
        f.inlined = chain[1:]
        for loc in chain:
            patch = _blame(src, loc["file"], loc["line"], runner, memo)
            if patch:
                f.patch = patch
                f.file, f.line = loc["file"], loc["line"]
                break
    for r in reports:
        if r.file and r.line:
            r.patch = _blame(src, r.file, r.line, runner, memo)


def _key(f: Frame) -> tuple[str, int]:
    return f.function, int(f.size, 16)


def _norm(f: Frame) -> str:
    return f"{f.function}+{int(f.offset, 16):#x}/{int(f.size, 16):#x}"


def _place(file: str, line: int, patch: str) -> str:
    return f"{file}:{line}" + (f", patch {patch}" if patch else "")


def summary(r: Report) -> str:
    """`TITLE (file:line, patch P)`: where the report is, and the patch that wrote it; when
    the crash site is not in the series but a caller is, that caller too (`; via`)."""
    named = r.title.rsplit(" in ", 1)[-1] if " in " in r.title else ""
    frames = [f for f in r.frames if not f.internal]
    site = next((f for f in frames if f.function == named and f.file), None) or \
        next((f for f in frames if f.file), None)
    if r.file:
        where = _place(r.file, r.line, r.patch)
        patched = bool(r.patch)
    elif site:
        where = _place(site.file, site.line, site.patch)
        patched = bool(site.patch)
    else:
        return r.title + (f" ({named}: no debug info for file:line)" if named else "")
    via = next((f for f in frames if f.patch), None) if not patched else None
    extra = f"; via {via.function} {_place(via.file, via.line, via.patch)}" if via else ""
    return f"{r.title} ({where}{extra})"


def triage_suite(suite, src: Source, runner: Runner) -> int:
    """Every kernel report that fails one of `suite`'s testcases (dmesg_clean: the kernel
    log during the binary; kernel_crash: the console from the crash on) becomes structured
    records on that testcase, and its message leads with the first one's summary.
    Returns the number of reports."""
    n = 0
    for case in suite.cases:
        if case.status != "fail" or case.kind not in ("dmesg_clean", "crash"):
            continue
        text = suite.dmesg if case.kind == "dmesg_clean" else "\n".join(case.diagnostics)
        found = parse(text)
        if not found:
            continue
        decode(found, src, runner)
        case.reports = [r.to_json() for r in found]
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        case.message = f"{summary(found[0])}{more}; {case.message}"
        n += len(found)
    return n
