"""`orch doctor`: what is installed, which Debian package provides what is missing, and
whether KVM really boots a kernel here (not just whether /dev/kvm exists).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
from pathlib import Path

from orchestrator.kernel.arch import Arch, is_native
from orchestrator.kernel.tree import EMBEDDED
from orchestrator.options import arch_list
from orchestrator.store import cache
from orchestrator.store.gc import print_usage
from orchestrator.targets import qemu

COMMON = [("git", "git"), ("make", "make"), ("gcc", "gcc"), ("flex", "flex"),
          ("bison", "bison"), ("bc", "bc"), ("cpio", "cpio"), ("readelf", "binutils"),
          ("dropbearconvert", "dropbear-bin"), ("apt-get", "apt"), ("dpkg-deb", "dpkg")]
OPTIONAL = [("ccache", "ccache"), ("ssh", "openssh-client")]
FILES = [("/bin/busybox", "busybox-static"), ("/usr/sbin/dropbear", "dropbear-bin"),
         ("/usr/include/libelf.h", "libelf-dev"), ("/usr/include/openssl/ssl.h", "libssl-dev")]

NAME = "doctor"
HELP = "what is installed, does KVM really work, cache size"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="x86_64,arm64", type=arch_list, dest="arches")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    return doctor(args.arches)


def doctor(arches: list[Arch]) -> int:
    missing: list[str] = []

    def check(ok: bool, what: str, pkg: str, optional: bool = False) -> None:
        mark = "ok " if ok else ("-- " if optional else "MISSING")
        print(f"  {mark:8}{what}" + ("" if ok else f"   (apt-get install {pkg})"))
        if not ok and not optional:
            missing.append(pkg)

    print("host tools:")
    for tool, pkg in COMMON:
        check(shutil.which(tool) is not None, tool, pkg)
    for tool, pkg in OPTIONAL:
        check(shutil.which(tool) is not None, f"{tool} (optional)", pkg, optional=True)
    for f, pkg in FILES:
        check(Path(f).exists(), f, pkg)
    print("per arch:")
    for a in arches:
        check(shutil.which(a.qemu) is not None, f"{a.name}: {a.qemu}", a.qemu_package)
        cc = a.cc()
        check(shutil.which(cc) is not None, f"{a.name}: {cc}", a.cross_package
              if a.cross_compile() else "gcc")
    print("embedded trees:")
    for name, (path, pkg) in EMBEDDED.items():
        check(Path(path).exists(), f"{name}: {path}", pkg, optional=name != "linux-6.1")
    print("python packages:")
    for dist in ("fabric", "paramiko", "junitparser", "pyyaml"):
        try:
            print(f"  ok      {dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            print(f"  MISSING {dist}   (pip install {dist})")
            missing.append(dist)
    print("acceleration:")
    for a in arches:
        if not is_native(a):
            print(f"  {a.name}: TCG (foreign arch)")
            continue
        dev = qemu.kvm_device()
        if not dev.usable:
            print(f"  {a.name}: TCG ({dev.why_not})")
            continue
        kernels = sorted(cache.cache_root().glob(f"kernels/{a.name}-*/complete"))
        if not kernels or shutil.which(a.qemu) is None:
            print(f"  {a.name}: /dev/kvm present; not probed yet (needs a built kernel: "
                  f"run `orch run` once)")
            continue
        image = kernels[-1].parent / Path(a.image_path).name
        ok, reason = qemu.kvm_probe(a, image)
        print(f"  {a.name}: {'KVM works' if ok else 'KVM does NOT work, TCG will be used'}"
              f" ({reason})")
    print_usage()
    if missing:
        print(f"missing: apt-get install {' '.join(sorted(set(missing)))}")
        return 2
    return 0
