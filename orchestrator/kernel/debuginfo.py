"""Debug info on demand: the objects a kernel report's frames are in, compiled again with
DWARF, only when a report appears.

Kernels are built without debug info (it would cost every build, see README "Crash
triage"). When a report needs line numbers, each frame's function is looked up in the
build's thin archive (`nm -S -A vmlinux.a`: the object, and the symbol's size, which with
its alignment padding is the frame's `/0xlen`), and that object is compiled again from
its own kbuild command line (`.NAME.o.cmd`) with `-g`, into a scratch file: the build dir
is left as it was.
gcc's code does not depend on -g, so the function's bytes and offsets are those of the
running kernel; faddr2line checks the size again.

The build dir holds the objects of the last kernel built there, not always of the kernel
tested: a stored kernel is not rebuilt, and a function that the series added (or a
verify, or another series, built since) is then in no object of the archive. Such a
function is looked for in the sources that the series changed: the one that defines it
(a line at column 0 naming it, not a prototype) gives the object to compile.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from orchestrator.base.runner import Runner

FUNC_TYPES = set("TtWw")
PADDING = 64  # the most alignment padding a function's kallsyms size may carry


def objects_for(builddir: Path, wanted: set[tuple[str, int]], cross_compile: str,
                runner: Runner, srctree: Path | None = None,
                touched: set[str] = frozenset()) -> dict[tuple[str, int], str]:
    """(function, size) -> the object that defines it, relative to the build dir. A
    function in no object of the archive: the object of the touched source (relative to
    `srctree`) that defines it."""
    archive = next((a for a in (builddir / "vmlinux.a", builddir / "built-in.a")
                    if a.is_file()), None)
    if archive is None or not wanted:
        return {}
    res = runner.run([f"{cross_compile}nm", "-S", "--defined-only", "-A", str(archive)],
                     always=True, tail_lines=0)
    sizes: dict[str, list[int]] = {}
    for name, size in wanted:
        sizes.setdefault(name, []).append(size)
    best: dict[tuple[str, int], tuple[int, str]] = {}
    named: dict[str, list[str]] = {}
    for line in res.output.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[3] not in sizes or parts[2] not in FUNC_TYPES:
            continue
        where = Path(parts[0].rsplit(":", 1)[0].split(":", 1)[-1])  # ARCHIVE:OBJECT:ADDR
        obj = str(where.relative_to(builddir) if where.is_relative_to(builddir) else where)
        named.setdefault(parts[3], []).append(obj)
        elf_size = int(parts[1], 16)
        for size in sizes[parts[3]]:
            # kallsyms' size runs to the next symbol: the ELF size plus alignment padding.
            pad = size - elf_size
            if 0 <= pad < PADDING and pad < best.get((parts[3], size), (PADDING, ""))[0]:
                best[(parts[3], size)] = (pad, obj)
    found = {k: obj for k, (_, obj) in best.items()}
    # The build dir may hold another build of the object (the tested kernel came from the
    # store; another series was built since): the one object of that name is compiled
    # again from the tested sources, and faddr2line's size check decides.
    for name, size in wanted:
        if (name, size) not in found and len(named.get(name, [])) == 1:
            found[(name, size)] = named[name][0]
    for name, size in wanted:
        if (name, size) not in found and name not in named and srctree is not None:
            obj = defined_in(srctree, touched, name)
            if obj and (builddir / Path(obj).parent / f".{Path(obj).name}.cmd").is_file():
                found[(name, size)] = obj
    return found


def defined_in(srctree: Path, sources: set[str], name: str) -> str | None:
    """The object of the C source among `sources` that defines function `name` (kernel
    style: the definition's line starts at column 0 and does not end in `;`)."""
    head = re.compile(rf"^[A-Za-z_].*\b{re.escape(name)}\(")
    for src in sorted(s for s in sources if s.endswith(".c")):
        try:
            lines = (srctree / src).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for i, line in enumerate(lines):
            if head.match(line) and not _prototype(lines, i):
                return src.removesuffix(".c") + ".o"
    return None


def _prototype(lines: list[str], i: int) -> bool:
    """Whether the declaration starting at line i ends in `;` before any `{`."""
    for line in lines[i:i + 12]:
        code = line.split("//", 1)[0]
        if "{" in code:
            return False
        if code.rstrip().endswith(";"):
            return True
    return True


def compile_argv(builddir: Path, obj: str, out: Path) -> list[str] | None:
    """kbuild's own command for `obj` (its .cmd file), writing `out` with DWARF instead:
    no dependency file, no objtool pass, no ccache."""
    p = Path(obj)
    cmd = builddir / p.parent / f".{p.name}.cmd"
    try:
        first = cmd.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    if " := " not in first:
        return None
    command = first.split(" := ", 1)[1].split(" ; ")[0]
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if argv and argv[0] == "ccache":
        argv = argv[1:]
    if "-o" not in argv or "-c" not in argv:
        return None
    argv = [a for a in argv if not a.startswith("-Wp,-MMD") and not a.startswith("-Wp,-MD")]
    argv[argv.index("-o") + 1] = str(out)
    return [*argv, "-g"]


def compile_with_debug(builddir: Path, obj: str, out: Path, runner: Runner) -> bool:
    """Compile `obj` again with DWARF into `out` (False: no command line, or it failed)."""
    argv = compile_argv(builddir, obj, out)
    if argv is None:
        return False
    return runner.run(argv, cwd=builddir, always=True, timeout=600).ok
