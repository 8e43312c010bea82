"""The kernel's own selftests (kselftest), built and installed per arch by the tree's own
Makefiles (`make -C tools/testing/selftests TARGETS=... install INSTALL_PATH=...`), static,
and cached under ORCH_CACHE/kselftests/ARCH-KEY.

The tree is never written to. kselftest's Makefiles put objects under O= but still write
into their source directory (mm's `check_config.sh` writes `local_config.{h,mk}` next to
its sources, with the arch's compiler's answer): so the build runs in a private copy of
`tools/` beside symlinks to the rest of the tree, and two arches can build from one
worktree at once. The source tree stays clean (no `.config`, nothing untracked), so the
kernel's own O= build keeps working in it.

uAPI headers: the kselftest tree's OWN, `make headers` with O= for the arch, reached by the
selftests Makefile through `KHDR_INCLUDES=-isystem O/usr/include` (6.1's too). Tests are
written against their own tree's uAPI and find out at run time what the running kernel
has (uffd-unit-tests reads the UFFDIO_API feature bits and skips a missing feature): so
6.12's `mm` built this way compiles, and runs on a 6.1 kernel, skipping what 6.1 lacks.
The kernel-under-test's headers would not even declare UFFDIO_MOVE, and 6.12's `mm` would
not compile against them.

Static: `EXTRA_CFLAGS=-static` (the mm/vm Makefiles put it in CFLAGS, which their link
lines use, including the -m32/-m64 rules) and `USERLDFLAGS=-static` (lib.mk's LDFLAGS,
6.1 and later). The guest is a busybox initramfs.

Libraries (libcap, libnuma, liburing): Debian's -dev packages for the arch, downloaded
into the cache (rootfs.sysroot), headers through CPATH and static archives through -L; a
cross build has no other source for them, and the host needs no extra package.

A program that does not build (a library that could not be had, a tree bug, 32-bit
programs on x86_64 without gcc-multilib) does not stop the others: `make -k`, then
`make -i install` installs what exists; the failures are parsed from make's output
(`-Otarget` keeps each target's lines together) into `Installed.unbuilt` with the
compiler's line, and kselftest-list.txt keeps only the programs that were installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.base.errors import BuildError, InfraError, MissingToolError, UsageError
from orchestrator.base.runner import Runner
from orchestrator.kernel.arch import Arch
from orchestrator.kernel.build_errors import compiler_errors
from orchestrator.store import cache
from orchestrator.targets.rootfs import sysroot

VERSION = "kselftests-v1"  # bump when the build changes what lands in the install dir
SELFTESTS = Path("tools/testing/selftests")
META = "installed.json"
INSTALL = "install"
# Libraries some programs link (mm: libcap, libnuma; liburing for cow/gup_longterm's
# io_uring cases), as Debian's -dev packages for the arch: headers and static archives,
# downloaded into the cache (cross builds have no other way to get them).
DEV_PACKAGES = ["libcap-dev", "libnuma-dev", "liburing-dev"]


@dataclass
class Installed:
    """A kselftest install dir (make ... install INSTALL_PATH=dir) for one arch."""

    dir: Path  # the install dir: run_kselftest.sh, kselftest-list.txt, COLLECTION/...
    collections: list[str]  # as asked
    programs: dict[str, list[str]]  # collection -> programs installed (kselftest-list order)
    unbuilt: dict[str, str]  # "collection:program" -> one-line reason it could not be built
    key: str  # cache key
    headers: str  # which uAPI headers were used, one line (for metadata)
    compiled: bool  # False when it came from the cache

    def to_json(self) -> str:
        """The cache entry's metadata; `dir` is stored relative to the entry."""
        data = asdict(self)
        data["dir"] = INSTALL
        del data["compiled"]
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, entry: Path) -> Installed:
        """The Installed stored in cache entry `entry`, as a cache hit (compiled=False)."""
        data = json.loads((entry / META).read_text())
        data["dir"] = entry / data["dir"]
        return cls(**data, compiled=False)


def known_collections(source: Path) -> list[str]:
    """The kselftest collections of a kernel tree: the directories under
    tools/testing/selftests with a Makefile, and the nested ones its Makefile's TARGETS
    name (drivers/net, filesystems/binderfs...)."""
    root = source / SELFTESTS
    if not root.is_dir():
        return []
    names = {d.name for d in root.iterdir() if (d / "Makefile").is_file()}
    top = root / "Makefile"
    text = top.read_text(errors="replace") if top.is_file() else ""
    for m in re.finditer(r"^\s*TARGETS\s*\+?=\s*(\S+)\s*$", text, re.M):
        if "/" in m.group(1) and (root / m.group(1) / "Makefile").is_file():
            names.add(m.group(1))
    return sorted(names)


def check_collections(source: Path, collections: list[str]) -> None:
    """UsageError, one line, for the first collection the tree does not have."""
    if not collections:
        raise UsageError("--kselftest: no collection named")
    have = known_collections(source)
    for name in collections:
        if name not in have:
            raise UsageError(f"--kselftest {name}: no such collection in {source} "
                             f"(have: {', '.join(have) or 'none'})")


def kernel_version(source: Path) -> str:
    """'6.12' from the tree's Makefile (VERSION, PATCHLEVEL); '' when unreadable."""
    try:
        text = (source / "Makefile").read_text(errors="replace")[:2000]
    except OSError:
        return ""
    fields = dict(re.findall(r"^(VERSION|PATCHLEVEL)\s*=\s*(\d+)", text, re.M))
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}" if len(fields) == 2 else ""


def cache_key(arch: Arch, source_id: str, collections: list[str], cc_version: str,
              dev: bool = True) -> str:
    """The store key: arch, the tree's content, the collections (any order), the compiler,
    and whether the -dev libraries were there."""
    return cache.digest(VERSION, arch.name, source_id, *sorted(set(collections)),
                        cc_version, *(DEV_PACKAGES if dev else ["no-dev"]))[:20]


def dev_sysroot(arch: Arch, runner: Runner, progress) -> Path | None:
    """The arch's -dev packages (DEV_PACKAGES), downloaded once; None when they cannot be
    had (no network): the programs that need them are then unbuilt, the rest builds."""
    if runner.dry_run:
        return None
    try:
        return sysroot(arch, runner, progress, packages=DEV_PACKAGES,
                       name=f"{arch.debian_arch}-kselftest-dev")
    except InfraError as exc:
        progress(f"kselftest {arch.name}: building without {', '.join(DEV_PACKAGES)}: {exc}")
        return None


def arch_vars(arch: Arch) -> list[str]:
    """make variables for the arch. MACHINE: 6.1's vm Makefile picks its programs by
    `uname -m` unless told, which is the host's in a cross build."""
    out = [f"ARCH={arch.kernel_arch}", f"MACHINE={arch.kernel_arch}"]
    if arch.cross_compile():
        out.append(f"CROSS_COMPILE={arch.cross_compile()}")
    return out


def headers_argv(arch: Arch, source: Path, obj: Path, jobs: int) -> list[str]:
    """The tree's own uAPI headers into OBJ/usr/include (the kernel's O= build)."""
    return ["make", "-C", str(source), f"O={obj}", f"ARCH={arch.kernel_arch}", f"-j{jobs}",
            "-s", "headers"]


def static_flags(libs: Path | None) -> list[str]:
    """-static for every link, and the -dev sysroot's static archives (-L); its headers
    go in through CPATH (see build_env), which mm's check_config.sh sees too."""
    extra = f" -L{libs}" if libs else ""
    return [f"EXTRA_CFLAGS=-static{extra}", f"USERLDFLAGS=-static{extra}"]


def build_env(dev: Path | None) -> dict[str, str]:
    """CPATH: the -dev sysroot's headers, for the compiler wherever make calls it (mm's
    check_config.sh calls `$CC` bare to find liburing)."""
    return {"CPATH": str(dev / "usr/include")} if dev else {}


def dev_libs(arch: Arch, dev: Path | None) -> Path | None:
    """The -dev sysroot's directory of static archives for the arch."""
    return dev / "usr/lib" / arch.gnu_triplet if dev else None


def make_argv(arch: Arch, tree: Path, obj: Path, collections: list[str], goal: str,
              jobs: int, install: Path | None = None, dev: Path | None = None) -> list[str]:
    """kselftest's make: `-k all` builds what can be built; `-i install` installs what
    exists (a failed program does not stop the rest). -Otarget keeps each target's output
    together, so a failure can be told from the compiler lines just before it."""
    mode = "-i" if goal == "install" else "-k"
    argv = ["make", mode, f"-j{jobs}", "-Otarget", "-C", str(tree / SELFTESTS), f"O={obj}",
            f"TARGETS={' '.join(collections)}", *arch_vars(arch),
            *static_flags(dev_libs(arch, dev)), goal]
    if install is not None:
        argv.append(f"INSTALL_PATH={install}")
    return argv


_MAKE_ERROR = re.compile(r"^make(?:\[\d+\])?: (?:\*\*\* )?\[(?:[^\]]*?): (?P<target>[^\]]+)\] "
                         r"Error \d+")
_MSG = re.compile(r"^\s+(?:CC|LD|AS|GEN)\s+(?:\[[^\]]*\]\s+)?(?P<name>\S+)")
_NO32 = "Warning: you seem to have a broken 32-bit build"


def parse_unbuilt(lines: list[str], build_root: Path, collection: str) -> dict[str, str]:
    """"collection:program" -> the reason, from make's output of one collection (-Otarget).
    The reason is the first compiler/linker error line of the target's block (the lines
    since the last `  CC  name` or make error line), else make's own line."""
    out: dict[str, str] = {}
    block: list[str] = []
    base = build_root / collection
    for line in lines:
        if _MSG.match(line):
            block = [line]
            continue
        m = _MAKE_ERROR.match(line)
        if not m:
            if _NO32 in line:
                out[f"{collection}:(32-bit programs)"] = (
                    "not attempted: no 32-bit x86 build environment (gcc-multilib)")
            block.append(line)
            continue
        try:  # make's own "all" or "install" failing: the program's line came first
            program = str(Path(m.group("target")).relative_to(base))
        except ValueError:
            block = []
            continue
        why = next((ln.strip() for ln in compiler_errors(block)), line.strip())
        out.setdefault(f"{collection}:{program}", why)
        block = []
    return out


def read_list(install: Path, collections: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """(collection -> its installed programs in kselftest-list.txt order, the list's
    entries whose file is missing)."""
    programs: dict[str, list[str]] = {c: [] for c in collections}
    missing: list[str] = []
    path = install / "kselftest-list.txt"
    text = path.read_text(errors="replace") if path.is_file() else ""
    for line in text.splitlines():
        if ":" not in line:
            continue
        coll, prog = line.strip().split(":", 1)
        if coll not in programs:
            continue
        if (install / coll / prog).is_file():
            programs[coll].append(prog)
        else:
            missing.append(f"{coll}:{prog}")
    return programs, missing


def mirror(source: Path, dest: Path, runner: Runner) -> None:
    """dest: a private copy of source's tools/ (kselftest writes there) and a symlink to
    every other top-level entry of the tree (read only)."""
    dest.mkdir(parents=True, exist_ok=True)
    if not runner.dry_run:
        for entry in source.iterdir():
            if entry.name not in ("tools", ".git") and not entry.name.startswith(".orch"):
                (dest / entry.name).symlink_to(entry.resolve())
    runner.check(["cp", "-a", str(source / "tools"), str(dest / "tools")], BuildError,
                 f"copying {source / 'tools'}")


def dynamic(install: Path) -> list[str]:
    """Installed ELF programs that are not static (they name an ELF interpreter)."""
    out = []
    for p in sorted(install.rglob("*")):
        if p.is_file() and not p.is_symlink() and _has_interp(p):
            out.append(str(p.relative_to(install)))
    return out


def _has_interp(path: Path) -> bool:
    # The program header table of an ELF64 file: PT_INTERP (3) means dynamically linked.
    with open(path, "rb") as f:
        data = f.read(65536)
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    order = "little" if data[5] == 1 else "big"
    phoff = int.from_bytes(data[32:40], order)
    phentsize = int.from_bytes(data[54:56], order)
    phnum = int.from_bytes(data[56:58], order)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 <= len(data) and int.from_bytes(data[off:off + 4], order) == 3:
            return True
    return False


def _compiler(arch: Arch, runner: Runner) -> str:
    cc = arch.cc()
    if not shutil.which(cc):
        raise MissingToolError(f"{cc} not found (apt-get install "
                               f"{arch.cross_package if arch.cross_compile() else 'gcc'})")
    for tool, pkg in (("make", "make"), ("rsync", "rsync")):
        if not shutil.which(tool):
            raise MissingToolError(f"{tool} not found (apt-get install {pkg})")
    res = runner.run([cc, "--version"], always=True)
    return res.output.splitlines()[0].strip() if res.ok and res.output else cc


def build(arch: Arch, source: Path, source_id: str, collections: list[str], runner: Runner,
          log: Path, progress=print) -> Installed:
    """Build and install `collections` from the kernel source tree `source` (a checkout orch
    owns: it may write into it, but must keep it usable for an O= kernel build, i.e. never
    make the source tree "not clean") for `arch`. `source_id` is a content id of that tree
    (git tree hash) used in the cache key. Cached under ORCH_CACHE/kselftests/ARCH-KEY; a
    second call compiles nothing."""
    check_collections(source, collections)
    version = kernel_version(source)
    cc_version = _compiler(arch, runner)
    dev = dev_sysroot(arch, runner, progress)
    key = cache_key(arch, source_id, collections, cc_version, dev is not None)
    entry = cache.subdir("kselftests") / f"{arch.name}-{key}"
    headers = (f"own uAPI headers of the kselftest tree ({version or source.name}): "
               f"make headers ARCH={arch.kernel_arch}, KHDR_INCLUDES=-isystem O/usr/include")
    cache.hold(entry)
    # One builder per entry: a second run asking for the same set waits, then hits.
    with cache.locked(cache.subdir("locks") / f"kselftests-{entry.name}.lock"):
        if (entry / META).is_file():
            cache.touch_used(entry)
            return Installed.from_json(entry)
        if entry.exists():  # an entry without its metadata: never finished
            shutil.rmtree(entry)
        installed = _build(arch, source.resolve(), collections, runner, log, progress, entry,
                           version, key, headers, dev)
    cache.touch_used(entry)
    return installed


def _build(arch: Arch, source: Path, collections: list[str], runner: Runner, log: Path,
           progress, entry: Path, version: str, key: str, headers: str,
           dev: Path | None) -> Installed:
    jobs = os.cpu_count() or 1
    log.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        tree, obj, out = tmp / "src", tmp / "obj", tmp / "out"
        install = out / INSTALL
        env = build_env(dev)
        mirror(source, tree, runner)
        runner.check(headers_argv(arch, source, obj, jobs), BuildError,
                     f"kselftest {arch.name}: make headers", log=log)
        unbuilt: dict[str, str] = {}
        for coll in collections:
            progress(f"kselftest {arch.name}: building {coll} ({version or source.name})")
            lines: list[str] = []
            res = runner.run(make_argv(arch, tree, obj, [coll], "all", jobs, dev=dev),
                             log=log, on_line=lines.append, env=env)
            if res.timed_out:
                raise BuildError(f"kselftest {arch.name}: building {coll} timed out")
            unbuilt.update(parse_unbuilt(lines, obj / "kselftest", coll))
        res = runner.run(make_argv(arch, tree, obj, collections, "install", jobs, install,
                                   dev), log=log, env=env)
        if runner.dry_run:
            return Installed(entry / INSTALL, list(collections), {}, {}, key, headers, True)
        if not (install / "run_kselftest.sh").is_file():
            last = next((ln for ln in reversed(res.tail) if ln.strip()), "")
            raise BuildError(f"kselftest {arch.name}: make install left no run_kselftest.sh "
                             f"(see {log}): {last.strip()}")
        programs, missing = read_list(install, collections)
        for name in missing:
            unbuilt.setdefault(name, f"not installed (its build failed: see {log.name})")
        _write_list(install, programs)
        for name in dynamic(install):
            progress(f"kselftest {arch.name}: warning: {name} is dynamically linked")
        installed = Installed(entry / INSTALL, list(collections), programs, unbuilt, key,
                              headers, True)
        (out / META).write_text(installed.to_json())
        _publish(out, entry)
        return installed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_list(install: Path, programs: dict[str, list[str]]) -> None:
    """kselftest-list.txt without the programs that were not installed (run_kselftest.sh
    would report each as a failure: "file is missing")."""
    lines = [f"{c}:{p}" for c, progs in programs.items() for p in progs]
    (install / "kselftest-list.txt").write_text("".join(ln + "\n" for ln in lines))


def _publish(out: Path, entry: Path) -> None:
    """Atomically: the entry appears whole (rename) or not at all."""
    try:
        out.rename(entry)
    except OSError:
        if (entry / META).is_file():  # published meanwhile (another cache user): same bits
            return
        shutil.rmtree(entry, ignore_errors=True)
        out.rename(entry)
