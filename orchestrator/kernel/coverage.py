"""A coverage build (`orch run --coverage`): GCOV profiling of the C files the series
changes, plus those asked for, without editing the tree's Makefiles; and the notes files
(.gcno) kept with the stored kernel, which line coverage is computed with.

How kbuild is told (measured on 6.1, see README "Patch coverage"): scripts/Makefile.lib
adds CFLAGS_GCOV to an object when `$(GCOV_PROFILE_<name>.o)$(GCOV_PROFILE)` does not start
with n. A variable given on make's command line reaches every sub-make and overrides the
Makefiles' own, and it keeps its `=` flavour: given as `$(if $(filter mm/userfaultfd.o
fs/userfaultfd.o,$@),y)` it is expanded when the object's flags are, with `$@` the object:
y for the named objects, empty (the directory's own setting) for another directory's
`userfaultfd.o`. The flags are part of each object's recorded command (.NAME.o.cmd), so
kbuild recompiles exactly the objects whose profiling changed. A file whose own Makefile
says `GCOV_PROFILE... := n` (boot code, the vDSO: profiling would break their link) is
left out, with one line.

Reproducible, as every kernel orch stores (README "Builds are reproducible"): gcc stamps
a profiled object with the time (the notes' stamp) and with the absolute path of its .gcda
(the build dir's). `-frandom-seed` fixes the stamp; `-fprofile-dir=/orch-gcov` with
`-fprofile-prefix-path=BUILDDIR` names the data `/orch-gcov/mm#userfaultfd.gcda` whatever
the build dir (`orch gc --verify` rebuilds in another one). Measured with gcc 12: the same
object from two build dirs, byte for byte; without these flags, two builds in one dir
already differ. They go to the profiled objects only, through kbuild's CFLAGS_KERNEL (and
CFLAGS_MODULE), empty by default and expanded per object like the flags above: ccache
cannot cache a compile with -fprofile-prefix-path, and every other object stays cacheable.
The environment's own CFLAGS_KERNEL/CFLAGS_MODULE are not passed on: the key does not hold
them.

The key of a coverage kernel says so: its .config has CONFIG_GCOV_KERNEL, and the files
asked for are part of it (`key_part`); kernel.json lists them and those really profiled.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from orchestrator.base.errors import UsageError
from orchestrator.base.runner import Runner

PROFILE = "coverage"  # configs/coverage.config; the cell's profile
NOTES = "gcov"  # in a store entry: NOTES/<path>.gcno per profiled file
DATA_DIR = "/orch-gcov"  # the .gcda names the kernel is built with (`DATA_DIR/mm#x.gcda`)


def series_sources(repo: Path, base: str, head: str, runner: Runner) -> list[str]:
    """The C files and headers the commits base..head change and keep (the series, and a
    checkout's uncommitted change): the C files are profiled, the lines they and the
    headers add are counted (kernel/gcov.py)."""
    res = runner.run(["git", "--git-dir", str(repo), "diff", "--name-only",
                      "--diff-filter=d", base, head, "--", "*.c", "*.h"], always=True)
    return sorted(set(res.output.split())) if res.ok else []


def excluded(srctree: Path, rel: str) -> str:
    """Why the tree's own Makefile keeps `rel` from being profiled ("" when it does not)."""
    path = Path(rel)
    stem = re.escape(path.stem)
    pat = re.compile(rf"^\s*GCOV_PROFILE(_{stem}\.o)?\s*:?=\s*n", re.M)
    for name in ("Makefile", "Kbuild"):
        mk = srctree / path.parent / name
        try:
            m = pat.search(mk.read_text(errors="replace"))
        except OSError:
            continue
        if m:
            return f"{path.parent / name} says {m.group(0).strip()}"
    return ""


def requested(srctree: Path, changed: list[str], extra: list[str]) -> tuple[list[str],
                                                                            list[str]]:
    """(the files to profile, one line per file left out and why). A file named with
    --coverage=FILE that is not in the tree is bad input."""
    for f in extra:
        if not (srctree / f).is_file():
            raise UsageError(f"--coverage={f}: no such file in the tree under test")
    files, notes = [], []
    for f in sorted(set(changed) | set(extra)):
        why = excluded(srctree, f)
        if why:
            notes.append(f"coverage: {f} is not profiled: {why}")
        else:
            files.append(f)
    return files, notes


def make_vars(files: list[str] | None, builddir: Path) -> list[str]:
    """make's command-line variables that profile exactly these objects, reproducibly
    (none for a kernel without coverage: `files` None)."""
    if files is None:
        return []
    by_stem: dict[str, list[str]] = {}
    for f in files:
        by_stem.setdefault(Path(f).stem, []).append(str(Path(f).with_suffix(".o")))
    every = " ".join(str(Path(f).with_suffix(".o")) for f in sorted(files))
    flags = " ".join(reproducible_flags(builddir))
    out = [f"GCOV_PROFILE_{stem}.o=$(if $(filter {' '.join(sorted(objs))},$@),y)"
           for stem, objs in sorted(by_stem.items())]
    # Not the environment's CFLAGS_KERNEL/CFLAGS_MODULE: the build key does not hold them,
    # and a stored kernel must be what its key says (gc --verify rebuilds it elsewhere).
    out += [f"{var}=$(if $(filter {every},$@),{flags})"
            for var in ("CFLAGS_KERNEL", "CFLAGS_MODULE")]
    return out


def reproducible_flags(builddir: Path, data_dir: str = DATA_DIR) -> list[str]:
    """gcc's flags that make a profiled object the same from any build dir."""
    return ["-frandom-seed=orch", f"-fprofile-dir={data_dir}",
            f"-fprofile-prefix-path={builddir}"]


def key_part(files: list[str]) -> str:
    """What a coverage kernel's key adds: the files asked for (the .config says GCOV)."""
    return "gcov:" + ",".join(sorted(files))


def _cmd_file(builddir: Path, rel: str) -> Path:
    obj = Path(rel).with_suffix(".o")
    return builddir / obj.parent / f".{obj.name}.cmd"


def profiled(builddir: Path, files: list[str]) -> list[str]:
    """The files whose object was built with GCOV (its recorded command says so) and has
    its notes file: a file not compiled in this config (another arch's) is not."""
    out = []
    for f in files:
        try:
            cmd = _cmd_file(builddir, f).read_text(errors="replace")
        except OSError:
            continue
        if "-fprofile-arcs" in cmd and (builddir / Path(f).with_suffix(".gcno")).is_file():
            out.append(f)
    return out


def source_prefix(builddir: Path, rel: str) -> str:
    """How the compiler was given the source: `../` for orch's build dirs (srctree
    `..`), the tree's absolute path otherwise (from the object's `source_` line)."""
    obj = Path(rel).with_suffix(".o")
    text = _cmd_file(builddir, rel).read_text(errors="replace")
    m = re.search(rf"^source_{re.escape(str(obj))} := (.*){re.escape(rel)}$", text, re.M)
    return m.group(1) if m else "../"


def keep_notes(builddir: Path, files: list[str], dest: Path) -> dict:
    """Copy the profiled files' notes into a store entry (dest/NOTES/...); what kernel.json
    records of the coverage build."""
    done = profiled(builddir, files)
    for f in done:
        gcno = Path(f).with_suffix(".gcno")
        (dest / NOTES / gcno.parent).mkdir(parents=True, exist_ok=True)
        shutil.copy2(builddir / gcno, dest / NOTES / gcno)
    return {"requested": sorted(files), "profiled": done,
            "source_prefix": source_prefix(builddir, done[0]) if done else "../"}
