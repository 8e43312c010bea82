"""Line coverage on the host: a binary's gcda files with the build's own notes, through gcovr
and the gcov that matches the compiler; and the lines each patch of the series added.

gcovr needs the layout the compiler saw: the notes record sources as `../mm/x.c`,
relative to the build dir, a direct subdirectory of the tree (kernel/tree.py). So a scratch
directory gets the series' files as they were built (from git, at the tested commit) and
`build/` with each profiled file's .gcno (from the store) and .gcda (from the machine);
gcov runs in `build/`. Headers the series did not touch are not written: gcovr leaves
them out (`--gcov-ignore-errors=source_not_found`).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from orchestrator.base.errors import InfraError, MissingToolError
from orchestrator.base.runner import Runner
from orchestrator.kernel.arch import Arch
from orchestrator.kernel.build import Kernel
from orchestrator.kernel.coverage import NOTES

# (count, function) per line number, per file: one binary's run of the profiled files.
Lines = dict[str, dict[int, tuple[int, str]]]


def gcov_tool(arch: Arch, compiler: str, runner: Runner) -> str:
    """The gcov of the compiler that built the kernel (aarch64-linux-gnu-gcov for arm64):
    the notes format is the compiler's, so the versions must be the same."""
    tool = f"{arch.cross_compile()}gcov"
    if not shutil.which(tool):
        raise MissingToolError(f"{tool} not found (apt-get install "
                               f"{arch.cross_package if arch.cross_compile() else 'gcc'})")
    res = runner.run([tool, "--version"], always=True)
    first = res.output.splitlines()[0] if res.output else ""
    ver = first.split(" ", 1)[-1]
    if compiler and ver != compiler.split(" ", 1)[-1]:
        raise InfraError(f"{tool} is '{first}', the kernel was built by '{compiler}': gcov "
                         f"must come from the same compiler", stage="coverage")
    return tool


def stage(work: Path, kernel: Kernel, sources: dict[str, str]) -> Path:
    """The scratch tree: `sources` (path -> text, as built) and build/ with the notes.
    Returns the object directory (work/build)."""
    info = kernel.info().get("coverage") or {}
    if info.get("source_prefix", "../") != "../":
        raise InfraError(f"kernel {kernel.key[:12]} was not built in a direct subdirectory "
                         f"of its tree: its notes cannot be mapped", stage="coverage")
    shutil.rmtree(work, ignore_errors=True)
    obj = work / "build"
    obj.mkdir(parents=True)
    for rel, text in sources.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    for f in info.get("profiled", []):
        gcno = Path(f).with_suffix(".gcno")
        (obj / gcno.parent).mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(kernel.store / NOTES / gcno, obj / gcno)
        except OSError as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise InfraError(f"kernel {kernel.key[:12]} has no notes for {f} "
                             f"({kernel.store / NOTES / gcno}: {exc.strerror})",
                             stage="coverage") from None
    return obj


def line_counts(work: Path, gcda: dict[str, bytes], tool: str, runner: Runner,
                log: Path | None = None) -> Lines:
    """One binary's counts: its gcda files (source path -> content) next to the notes in
    work/build, through gcovr. Only the files present in `work` come out."""
    obj = work / "build"
    for old in obj.rglob("*.gcda"):
        old.unlink()
    for f, data in gcda.items():
        (obj / Path(f).with_suffix(".gcda")).write_bytes(data)
    out = work / "gcovr.json"
    res = runner.run([sys.executable, "-m", "gcovr", "--root", str(work),
                      "--gcov-object-directory", str(obj), "--gcov-executable", tool,
                      "--gcov-ignore-errors=source_not_found",
                      # arm64's counters are not atomic (kbuild's try-run finds that
                      # -fprofile-update=prefer-atomic needs libatomic there): a lost
                      # update between CPUs can make a derived branch count negative
                      "--gcov-ignore-parse-errors=negative_hits.warn_once_per_file",
                      "--json", str(out), str(obj)], log=log, always=True)
    if not res.ok:
        raise InfraError(f"gcovr failed: {(res.tail or [''])[-1].strip()}", stage="coverage")
    return parse_gcovr(json.loads(out.read_text()))


def parse_gcovr(doc: dict) -> Lines:
    """gcovr's JSON report as {file: {line: (count, function)}}."""
    out: Lines = {}
    for f in doc.get("files", []):
        lines = out.setdefault(f["file"], {})
        for ln in f.get("lines", []):
            if ln.get("gcovr/excluded") or ln.get("gcovr/noncode"):
                continue
            n = int(ln["line_number"])
            count = int(ln.get("count", 0))
            old = lines.get(n)
            lines[n] = (count + (old[0] if old else 0),
                        (old[1] if old else "") or ln.get("function_name") or "")
    return out


# --- which lines each patch added ------------------------------------------------------

_HEAD_RE = re.compile(r"^([0-9a-f]{40}) \d+ (\d+)")


def file_at(repo: Path, commit: str, path: str, runner: Runner) -> str:
    res = runner.run(["git", "--git-dir", str(repo), "show", f"{commit}:{path}"],
                     always=True)
    return res.output if res.ok else ""


def added_lines(repo: Path, base: str, head: str, path: str, commits: dict[str, str],
                runner: Runner) -> list[tuple[int, str, str]]:
    """(line, text, patch) of each line of `path` at `head` that a commit of base..head
    wrote (`commits`: commit -> patch name), by `git blame base..head`: a line a later
    patch changed is that patch's; one a later patch removed is nobody's."""
    res = runner.run(["git", "--git-dir", str(repo), "blame", "--porcelain",
                      f"{base}..{head}", "--", path], always=True)
    return parse_blame(res.output, commits) if res.ok else []


def parse_blame(text: str, commits: dict[str, str]) -> list[tuple[int, str, str]]:
    out = []
    current: tuple[str, int] | None = None
    for ln in text.splitlines():
        if ln.startswith("\t"):
            if current and current[0] in commits:
                out.append((current[1], ln[1:], commits[current[0]]))
            current = None
            continue
        m = _HEAD_RE.match(ln)
        if m:
            current = (m.group(1), int(m.group(2)))
    return out
