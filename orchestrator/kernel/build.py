"""Kernel build: out-of-tree, ccache when present, and no compile at all when a kernel
with the same inputs (source tree object, final .config, arch, compiler) is in the store.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.base import files
from orchestrator.base.errors import BuildError, MissingToolError
from orchestrator.base.runner import Runner
from orchestrator.kernel import coverage as covmod
from orchestrator.kernel import estimates, provenance
from orchestrator.kernel.arch import Arch
from orchestrator.kernel.build_errors import error_lines, no_space, os_error_text
from orchestrator.kernel.kconfig import make_argv
from orchestrator.store import cache

STEP_RE = re.compile(r"^\s+(CC|LD|AR|AS|OBJCOPY|GEN|HOSTCC|CPP|OBJTOOL|LDS|UPD|SYSMAP)\s+(\S+)")

# Fixed so that the same inputs give the same image, cold or incremental (`orch gc
# --verify` compares them): the banner's user, date and build count (#N, else counted up
# by every link in a build dir). KBUILD_BUILD_HOST is set per kernel to its stamp.
REPRO_ENV = {
    "KBUILD_BUILD_USER": "orch",
    "KBUILD_BUILD_TIMESTAMP": "Sat Jan  1 00:00:00 UTC 2000",
    "KBUILD_BUILD_VERSION": "1",
}
GDB_DIR = "gdb"  # in a store entry: vmlinux-gdb.py and scripts/gdb/linux/*.py
SYMS = "vmlinux-syms"  # in a store entry: vmlinux without debug info (for gdb's symbols)
# Bumped whenever what goes into the image changes for the same inputs (v2: the stamp;
# v3: a fixed build count, and entries that carry the proof of their source tree).
KEY_VERSION = "kernel-v3"


def stamp(key: str) -> str:
    """What identifies this build in the running kernel: the store key as the build host.

    It shows in /proc/version and in the boot banner ("Linux version R (orch@orch-KEY)"),
    so a remote target can prove it runs the kernel orch built, not only one with the same
    release string. Only init/version.o and the x86 boot stub see it: a new key relinks.
    """
    return f"orch-{key}"


@dataclass
class Kernel:
    arch: Arch
    key: str
    store: Path  # holds image, config, headers/

    @property
    def image(self) -> Path:
        return self.store / Path(self.arch.image_path).name

    @property
    def headers(self) -> Path:
        return self.store / "headers"

    @property
    def gdb_vmlinux(self) -> Path:
        """What gdb loads: vmlinux with its DWARF when kept (`vmlinux`), else the one with
        its symbol table only (`vmlinux-syms`; kernels stored before orch kept it have none
        unless their build dir still held it: `adopt`)."""
        return self.vmlinux or self.store / SYMS

    @property
    def gdb_scripts(self) -> Path | None:
        """The kernel's gdb scripts (vmlinux-gdb.py and its linux/ package), stored when
        the kernel was built with CONFIG_GDB_SCRIPTS=y; None otherwise."""
        p = self.store / GDB_DIR / "vmlinux-gdb.py"
        return p if p.is_file() else None

    @property
    def stamp(self) -> str:
        return stamp(self.key)

    @property
    def config(self) -> Path:
        return self.store / "config"

    def headers_digest(self) -> str:
        """The content of the uAPI headers (what the selftests are compiled against):
        recorded in kernel.json when stored; computed (and recorded) for older entries."""
        info = self.info()
        if info.get("headers_digest"):
            return info["headers_digest"]
        d = tree_digest(self.headers)
        if info and (self.store / "complete").exists():
            info["headers_digest"] = d
            files.write_text(self.store / "kernel.json", json.dumps(info, indent=2))
        return d

    @property
    def vmlinux(self) -> Path | None:
        """vmlinux with its DWARF, kept when the config has debug info: what crash triage
        decodes frames to file:line with (and what gdb loads)."""
        p = self.store / "vmlinux"
        return p if p.is_file() else None

    def info(self) -> dict:
        try:
            return json.loads((self.store / "kernel.json").read_text())
        except (OSError, ValueError):
            return {}


def tree_digest(top: Path) -> str:
    """A digest of every file under `top`: names and contents."""
    paths = sorted(p for p in top.rglob("*") if p.is_file())
    return cache.digest(*[f"{p.relative_to(top)}:{cache.file_digest(p)}" for p in paths])


def compiler_version(arch: Arch, runner: Runner) -> str:
    cc = arch.cc()
    if not shutil.which(cc):
        raise MissingToolError(f"{cc} not found (apt-get install "
                               f"{arch.cross_package if arch.cross_compile() else 'gcc'})")
    res = runner.run([cc, "--version"], always=True)
    return res.output.splitlines()[0] if res.output else cc


def build_key(arch: Arch, source_tree: str, config_text: str, compiler: str,
              coverage: list[str] | None = None) -> str:
    # The source *tree object* (not the commit id): re-applying the same series gives a
    # new commit but the same tree, and must not rebuild. A coverage build adds the files
    # it profiles (its .config has GCOV): another set of files is another kernel.
    extra = [covmod.key_part(coverage)] if coverage is not None else []
    return cache.digest(KEY_VERSION, arch.name, source_tree, config_text, compiler,
                        *extra)[:20]


def store_for(arch: Arch, key: str) -> Kernel:
    return Kernel(arch, key, cache.subdir("kernels") / f"{arch.name}-{key}")


def format_problem(arch: Arch, image: Path) -> str | None:
    """A cheap check of the image's own header (for entries stored before digests were
    recorded): the boot protocol magic, and for bzImage the size its header announces."""
    try:
        with open(image, "rb") as f:
            head = f.read(0x240)
        size = image.stat().st_size
    except OSError as exc:
        return f"{image.name} cannot be read ({exc.strerror})"
    if arch.image == "bzImage":
        if head[0x202:0x206] != b"HdrS":
            return f"{image.name} has no x86 boot header"
        setup = head[0x1f1] or 4
        need = (setup + 1) * 512 + int.from_bytes(head[0x1f4:0x1f8], "little") * 16
        if size < need:
            return f"{image.name} is truncated ({size} bytes, its header says {need})"
    elif arch.image == "Image" and head[0x38:0x3c] != b"ARM\x64":
        return f"{image.name} has no arm64 Image header"
    return None


def store_problem(k: Kernel) -> str | None:
    """Why a stored kernel cannot be used (None: it can). The image's sha256 is recorded
    in kernel.json when it is stored and checked here, on every use."""
    if not k.image.is_file():
        return f"{k.image.name} is missing"
    if not (k.headers / "include").is_dir() or not k.config.is_file():
        return "its headers or config are missing"
    info = k.info()
    want = info.get("image_sha256")
    if not want:
        why = format_problem(k.arch, k.image)
        if why:
            return why
        info["image_sha256"] = cache.file_digest(k.image)  # stored before digests: record
        files.write_text(k.store / "kernel.json", json.dumps(info, indent=2))
        return None
    got = cache.file_digest(k.image)
    if got != want:
        return (f"{k.image.name} ({k.image.stat().st_size} bytes) has sha256 {got[:12]}..., "
                f"not the {want[:12]}... recorded when it was stored")
    return None


def ccache_mode() -> dict[str, str]:
    """ccache's depend mode: a miss runs the compiler once (with kbuild's -Wp,-MMD), not
    the preprocessor and then the compiler (~1.02x bare make cold, not ~1.45x); a hit is a
    direct-mode hit. CCACHE_NODEPEND or CCACHE_DEPEND in the environment is left alone."""
    if "CCACHE_NODEPEND" in os.environ or "CCACHE_DEPEND" in os.environ:
        return {}
    return {"CCACHE_DEPEND": "1"}


def make_env(arch: Arch, key: str, srctree: Path, use_ccache: bool = True) -> tuple[str, dict]:
    """(CC, environment) of a kernel build: reproducible (REPRO_ENV, the key's stamp) and,
    when installed and wanted, through ccache."""
    cc, env = arch.cc(), dict(REPRO_ENV, KBUILD_BUILD_HOST=stamp(key))
    if use_ccache and shutil.which("ccache"):
        cc = f"ccache {cc}"
        env["CCACHE_DIR"] = os.environ.get("CCACHE_DIR", str(cache.subdir("ccache")))
        env.setdefault("CCACHE_MAXSIZE", os.environ.get("CCACHE_MAXSIZE", "5G"))
        # Paths under the worktree hash relative, so another worktree path still hits.
        env["CCACHE_BASEDIR"] = str(srctree)
        env["CCACHE_NOHASHDIR"] = "1"
        env.update(ccache_mode())
    return cc, env


def build(arch: Arch, srctree: Path, builddir: Path, key: str, runner: Runner, log: Path,
          jobs: int | None = None, meter=None, warn=None, source: dict | None = None,
          config_text: str | None = None, note=None,
          coverage: list[str] | None = None) -> tuple[Kernel, bool]:
    """Returns (kernel, compiled?). A damaged store entry is reported (`warn`, one line),
    removed, and built again. `meter(label, total, expected)`: a base.progress.Meter for
    make's steps (see estimates.py). `source` ({"source_tree", "commit", "repo"}) and
    `config_text`: what the key was made of; the kernel is stored only with the proof that
    it was built from them (provenance.py), and kernel.json records them. `coverage`: the
    files a coverage build profiles (kernel/coverage.py); their notes are stored too."""
    k = store_for(arch, key)
    cache.hold(k.store)  # `orch gc` leaves it alone while this orch runs
    if (k.store / "complete").exists() and not runner.dry_run:
        why = store_problem(k)
        if why is None:
            adopt(k, builddir)
            cache.touch_used(k.store)
            return k, False
        if warn:
            warn(f"stored kernel {k.store.name} is damaged: {why}; removing it and building "
                 f"again")
        shutil.rmtree(k.store, ignore_errors=True)
    elif (k.store / "complete").exists():
        return k, False
    tree = (source or {}).get("source_tree", "")
    if not tree and not runner.dry_run:
        # No proof can be made without the tree the key was computed from: nothing is built
        # to be stored on trust.
        raise BuildError(f"{arch.name} kernel not built under key {key[:12]}: no source tree "
                         f"id to prove it against (build.build needs source['source_tree'])")
    jobs = jobs or os.cpu_count() or 1
    cc, env = make_env(arch, key, srctree)
    if not runner.dry_run:
        provenance.prepare(srctree, builddir, tree, runner, note)
    cold = not (builddir / "vmlinux").exists()
    total, expected = estimates.estimate(arch, cold)
    steps = meter(f"build {arch.name}", total, expected) if meter else None

    def on_line(line: str) -> None:
        m = STEP_RE.match(line)
        if m and steps:
            steps.update(f"{m.group(1)} {m.group(2)}")

    start = time.monotonic()
    # The image and the uAPI headers (for the selftests) in one make: one pass over the
    # tree instead of two, and headers_install overlaps the compile.
    argv = make_argv(arch, srctree, builddir, make_targets(arch, builddir), jobs=jobs,
                     cc=cc) + [f"INSTALL_HDR_PATH={builddir / 'orch-headers'}",
                               *covmod.make_vars(coverage, builddir)]
    res = runner.run(argv, env=env, log=log, on_line=on_line, tail_lines=4000)
    if runner.dry_run:
        return k, True
    if not res.ok:
        provenance.finished(builddir, tree, ok=False)
    if not res.ok:
        full = no_space(res.tail)
        if full:
            raise BuildError(f"{arch.name} kernel build failed: no space left on device in "
                             f"{builddir} or the ccache ({full})")
        errors = error_lines(res.tail)
        raise BuildError(
            f"{arch.name} kernel build failed: {errors[0].strip() if errors else res.tail[-1]}",
            hint="\n".join(errors[:20]),
        )
    why = provenance.proof(srctree, builddir, tree, config_text or "", stamp(key), runner)
    if why:  # the build dir's record keeps this build as unfinished: not trusted
        raise BuildError(f"{arch.name} kernel not stored under key {key[:12]}: {why}")
    provenance.finished(builddir, tree, ok=True)
    tmp = k.store.with_name(f"{k.store.name}.tmp-{os.getpid()}")
    try:
        store(arch, key, builddir, tmp, start, steps.done if steps else None, cold,
              source, coverage)
        shutil.rmtree(k.store, ignore_errors=True)
        os.replace(tmp, k.store)
    except OSError as exc:
        # ENOSPC and the like: no half-written entry is left (only complete ones are used).
        shutil.rmtree(tmp, ignore_errors=True)
        raise BuildError(f"cannot store the {arch.name} kernel in {k.store.parent}: "
                         f"{os_error_text(exc)}") from None
    cache.touch_used(k.store)
    return k, True


def make_targets(arch: Arch, builddir: Path) -> list[str]:
    """The image and the uAPI headers; the gdb scripts too when the .config asks for them
    (kbuild's `all` would build them, orch names its targets)."""
    try:
        gdb = "CONFIG_GDB_SCRIPTS=y\n" in (builddir / ".config").read_text()
    except OSError:
        gdb = False
    return [arch.image, "headers_install", *(["scripts_gdb"] if gdb else [])]


def copy_gdb_scripts(builddir: Path, dest: Path) -> None:
    """vmlinux-gdb.py and the scripts/gdb/linux package as real files (the build dir has
    symlinks into the worktree, which moves on), only when `make scripts_gdb` made them;
    `dest` is created only then."""
    loader = builddir / "vmlinux-gdb.py"
    pkg = builddir / "scripts" / "gdb" / "linux"
    if not loader.exists() or not (pkg / "constants.py").is_file():
        return
    (dest / "scripts" / "gdb" / "linux").mkdir(parents=True)
    shutil.copyfile(loader, dest / "vmlinux-gdb.py")
    for f in pkg.glob("*.py"):
        shutil.copyfile(f, dest / "scripts" / "gdb" / "linux" / f.name)


def built_here(k: Kernel, vmlinux: Path) -> bool:
    """Is `vmlinux` this kernel's? Its banner carries the kernel's stamp (the store key)."""
    needle = f"orch@{k.stamp})".encode()
    try:
        with open(vmlinux, "rb") as f:
            return needle in f.read()
    except OSError:
        return False


def adopt(k: Kernel, builddir: Path) -> None:
    """A stored kernel without its vmlinux (stored before orch kept it): take the build
    dir's when it is this kernel's (its banner says so), atomically; else leave it be."""
    if k.gdb_vmlinux.exists() or not built_here(k, builddir / "vmlinux"):
        return
    tmp = k.store / f".vmlinux.tmp-{os.getpid()}"
    gtmp = k.store / f".gdb.tmp-{os.getpid()}"
    try:
        shutil.copy2(builddir / "vmlinux", tmp)
        os.replace(tmp, k.store / SYMS)
        if k.gdb_scripts is None:
            copy_gdb_scripts(builddir, gtmp)
            if gtmp.exists():
                os.replace(gtmp, k.store / GDB_DIR)
    except OSError:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(gtmp, ignore_errors=True)


def keep_vmlinux(builddir: Path, tmp: Path) -> None:
    """With debug info in the config, the store keeps vmlinux (what crash triage decodes
    frames with, and what gdb loads). A hard link when the build dir is on the same file
    system: free, and safe, since the linker replaces vmlinux (a new inode) rather than
    writing into it; compressing it would add seconds to every edit-build loop."""
    config = (builddir / ".config").read_text()
    if "\nCONFIG_DEBUG_INFO=y" not in config or not (builddir / "vmlinux").is_file():
        return
    try:
        os.link(builddir / "vmlinux", tmp / "vmlinux")
    except OSError:
        shutil.copy2(builddir / "vmlinux", tmp / "vmlinux")


def store(arch: Arch, key: str, builddir: Path, tmp: Path, start: float,
          steps: int | None = None, cold: bool = True, source: dict | None = None,
          coverage: list[str] | None = None) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    image = tmp / Path(arch.image_path).name
    shutil.copy2(builddir / arch.image_path, image)
    shutil.copy2(builddir / ".config", tmp / "config")
    if (builddir / "System.map").exists():
        shutil.copy2(builddir / "System.map", tmp / "System.map")
    keep_vmlinux(builddir, tmp)
    shutil.copytree(builddir / "orch-headers", tmp / "headers")
    if not (tmp / "vmlinux").exists() and (builddir / "vmlinux").is_file():
        try:  # a hard link, as keep_vmlinux: the linker writes a new inode
            os.link(builddir / "vmlinux", tmp / SYMS)
        except OSError:
            shutil.copy2(builddir / "vmlinux", tmp / SYMS)
    copy_gdb_scripts(builddir, tmp / GDB_DIR)
    gcov = covmod.keep_notes(builddir, coverage, tmp) if coverage is not None else None
    release = (builddir / "include/config/kernel.release")
    (tmp / "kernel.json").write_text(json.dumps({
        "arch": arch.name,
        "key": key,
        "release": release.read_text().strip() if release.exists() else "",
        "stamp": stamp(key),
        "compile_seconds": round(time.monotonic() - start, 1),
        "steps": steps,  # make's [CC file] lines: the next cold build's total
        "cold": cold,
        "image_sha256": cache.file_digest(image),
        "headers_digest": tree_digest(tmp / "headers"),
        **(source or {}),  # source_tree (checked before storing), commit, repo
        "config_sha256": cache.file_digest(tmp / "config"),
        **({"coverage": gcov} if gcov is not None else {}),
    }, indent=2))
    (tmp / "complete").write_text("")
