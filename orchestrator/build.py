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

from . import cache
from .arch import Arch
from .errors import BuildError, MissingToolError
from .kconfig import make_argv
from .runner import Runner

ERROR_RE = re.compile(r"(: error: |: fatal error: |^make(\[\d+\])?: \*\*\* |undefined reference"
                      r"|^ERROR: )")
STEP_RE = re.compile(r"^\s+(CC|LD|AR|AS|OBJCOPY|GEN|HOSTCC|CPP|OBJTOOL|LDS|UPD|SYSMAP)\s+(\S+)")

# Fixed so that an unchanged tree rebuilds the same bits (and init/version.o stays put).
# KBUILD_BUILD_HOST is set per kernel to its stamp (see `stamp`).
REPRO_ENV = {
    "KBUILD_BUILD_USER": "orch",
    "KBUILD_BUILD_TIMESTAMP": "Sat Jan  1 00:00:00 UTC 2000",
}
# Bumped whenever what goes into the image changes for the same inputs (v2: the stamp).
KEY_VERSION = "kernel-v2"


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
    def stamp(self) -> str:
        return stamp(self.key)

    @property
    def config(self) -> Path:
        return self.store / "config"

    def info(self) -> dict:
        try:
            return json.loads((self.store / "kernel.json").read_text())
        except (OSError, ValueError):
            return {}


def compiler_version(arch: Arch, runner: Runner) -> str:
    cc = arch.cc()
    if not shutil.which(cc):
        raise MissingToolError(f"{cc} not found (apt-get install "
                               f"{arch.cross_package if arch.cross_compile() else 'gcc'})")
    res = runner.run([cc, "--version"], always=True)
    return res.output.splitlines()[0] if res.output else cc


def build_key(arch: Arch, source_tree: str, config_text: str, compiler: str) -> str:
    # The source *tree object* (not the commit id): re-applying the same series gives a
    # new commit but the same tree, and must not rebuild.
    return cache.digest(KEY_VERSION, arch.name, source_tree, config_text, compiler)[:20]


def store_for(arch: Arch, key: str) -> Kernel:
    return Kernel(arch, key, cache.subdir("kernels") / f"{arch.name}-{key}")


def build(arch: Arch, srctree: Path, builddir: Path, key: str, runner: Runner, log: Path,
          jobs: int | None = None, progress=None) -> tuple[Kernel, bool]:
    """Returns (kernel, compiled?)."""
    k = store_for(arch, key)
    if (k.store / "complete").exists():
        return k, False
    jobs = jobs or os.cpu_count() or 1
    cc = arch.cc()
    env = dict(REPRO_ENV, KBUILD_BUILD_HOST=stamp(key))
    if shutil.which("ccache"):
        cc = f"ccache {cc}"
        env["CCACHE_DIR"] = os.environ.get("CCACHE_DIR", str(cache.subdir("ccache")))
        env.setdefault("CCACHE_MAXSIZE", os.environ.get("CCACHE_MAXSIZE", "5G"))
        # Paths under the worktree hash relative, so another worktree path still hits.
        env["CCACHE_BASEDIR"] = str(srctree)
        env["CCACHE_NOHASHDIR"] = "1"
    counter = {"n": 0}

    def on_line(line: str) -> None:
        m = STEP_RE.match(line)
        if m and progress:
            counter["n"] += 1
            progress(f"build {arch.name}: [{counter['n']}] {m.group(1)} {m.group(2)}")

    start = time.monotonic()
    res = runner.run(make_argv(arch, srctree, builddir, [arch.image], jobs=jobs, cc=cc),
                     env=env, log=log, on_line=on_line, tail_lines=4000)
    if runner.dry_run:
        return k, True
    if not res.ok:
        errors = [ln for ln in res.tail if ERROR_RE.search(ln)]
        raise BuildError(
            f"{arch.name} kernel build failed: {errors[0].strip() if errors else res.tail[-1]}",
            hint="\n".join(errors[:20]),
        )
    hdr = runner.run(make_argv(arch, srctree, builddir, ["headers_install"]) +
                     [f"INSTALL_HDR_PATH={builddir / 'orch-headers'}"], env=env, log=log)
    if not hdr.ok:
        raise BuildError(f"{arch.name} headers_install failed: {hdr.tail[-1] if hdr.tail else ''}")
    tmp = k.store.with_name(k.store.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(builddir / arch.image_path, tmp / Path(arch.image_path).name)
    shutil.copy2(builddir / ".config", tmp / "config")
    if (builddir / "System.map").exists():
        shutil.copy2(builddir / "System.map", tmp / "System.map")
    shutil.copytree(builddir / "orch-headers", tmp / "headers")
    release = (builddir / "include/config/kernel.release")
    (tmp / "kernel.json").write_text(json.dumps({
        "arch": arch.name,
        "key": key,
        "release": release.read_text().strip() if release.exists() else "",
        "stamp": stamp(key),
        "compile_seconds": round(time.monotonic() - start, 1),
    }, indent=2))
    (tmp / "complete").write_text("")
    shutil.rmtree(k.store, ignore_errors=True)
    os.replace(tmp, k.store)
    return k, True
