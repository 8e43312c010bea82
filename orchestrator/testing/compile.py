"""Selftest binaries: every selftests/*.c is one static binary, built per arch against the
uAPI headers of the kernel under test (its `make headers_install`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from orchestrator.base.errors import BuildError, UsageError
from orchestrator.base.runner import Runner
from orchestrator.kernel.arch import Arch
from orchestrator.kernel.build import compiler_version
from orchestrator.kernel.build_errors import first_error
from orchestrator.store import cache

CFLAGS = ["-static", "-O2", "-g0", "-Wall", "-Wextra", "-pthread"]


def sources(directory: Path, only: list[str] | None = None) -> list[Path]:
    if not directory.is_dir():
        raise UsageError(f"--selftests {directory}: no such directory")
    srcs = sorted(directory.glob("*.c"))
    if not srcs:
        raise UsageError(f"--selftests {directory}: no *.c test sources")
    if only:
        names = {s.stem for s in srcs}
        unknown = [t for t in only if t.split("/")[0] not in names]
        if unknown:
            raise UsageError(f"--test {unknown[0]}: no such test binary "
                             f"(have: {', '.join(sorted(names))})")
        wanted = {t.split("/")[0] for t in only}
        srcs = [s for s in srcs if s.stem in wanted]
    return srcs


def compile_argv(cc: str, src: Path, out: Path, include: Path, headers: Path) -> list[str]:
    return [cc, *CFLAGS, "-I", str(include), "-isystem", str(headers / "include"),
            "-o", str(out), str(src)]


def build(arch: Arch, directory: Path, headers: Path, headers_key: str, runner: Runner,
          log: Path, only: list[str] | None = None, progress=print) -> list[Path]:
    """The static binaries of `directory`'s selftests (only those named in `only`), from
    the cache when the same sources were built against the same headers (`headers_key`:
    their content, not the kernel's key: a kernel edit that leaves the uAPI as it was
    reuses the binaries) with the same compiler."""
    srcs = sources(directory, only)
    cc = arch.cc()
    compiler = compiler_version(arch, runner)
    helpers = sorted(directory.glob("*.h"))
    key = cache.digest("selftests-v2", arch.name, headers_key, cc, compiler,
                       *[f"{p.name}:{cache.file_digest(p)}" for p in srcs + helpers])[:20]
    outdir = cache.subdir("selftests") / f"{arch.name}-{key}"
    outs = [outdir / s.stem for s in srcs]
    cache.hold(outdir)
    if all(o.exists() for o in outs):
        cache.touch_used(outdir)
        return outs
    if runner.dry_run:
        for s in srcs:
            runner.run(compile_argv(cc, s, outdir / s.stem, directory, headers))
        return outs
    # A private temp dir: two runs may compile the same set at once (same kernel, both
    # arches' runs of one series...); the first to finish publishes, the other's is dropped.
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}-", dir=outdir.parent))
    for s in srcs:
        progress(f"selftests {arch.name}: cc {s.name}")
        res = runner.run(compile_argv(cc, s, tmp / s.stem, directory, headers), log=log)
        if not res.ok:
            err = first_error(res.tail, res.tail[-1].strip() if res.tail else "")
            raise BuildError(f"selftest {s.name} does not build for {arch.name}: {err}")
    try:
        tmp.rename(outdir)
    except OSError:
        if all(o.exists() for o in outs):  # published meanwhile by another run: same bits
            shutil.rmtree(tmp, ignore_errors=True)
        else:  # a stale partial dir
            shutil.rmtree(outdir, ignore_errors=True)
            tmp.rename(outdir)
    cache.touch_used(outdir)
    return outs
