"""Architectures as records: everything arch-specific lives here."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from orchestrator.base.errors import UsageError


@dataclass(frozen=True)
class Arch:
    name: str  # orch's name, also the Kconfig fragment name
    kernel_arch: str  # ARCH= for make
    image: str  # make target
    image_path: str  # relative to the build dir
    qemu: str  # qemu binary
    qemu_package: str  # Debian package that provides it
    machine: str
    cpu: str  # TCG cpu
    console: str  # kernel console device
    debian_arch: str  # for multiarch downloads
    gnu_triplet: str  # cross prefix without the trailing dash
    cross_package: str  # Debian package of the cross compiler
    max_cpus: int = 8  # QEMU's limit for `machine` (-smp beyond it: QEMU refuses to start)

    def cross_compile(self) -> str:
        """CROSS_COMPILE= value: empty when building natively."""
        if is_native(self):
            return ""
        return self.gnu_triplet + "-"

    def cc(self) -> str:
        return self.cross_compile() + "gcc"


X86_64 = Arch(
    name="x86_64",
    kernel_arch="x86_64",
    image="bzImage",
    image_path="arch/x86/boot/bzImage",
    qemu="qemu-system-x86_64",
    qemu_package="qemu-system-x86",
    machine="q35",
    cpu="max",
    console="ttyS0",
    debian_arch="amd64",
    gnu_triplet="x86_64-linux-gnu",
    cross_package="gcc-x86-64-linux-gnu",
    max_cpus=288,  # q35
)

ARM64 = Arch(
    name="arm64",
    kernel_arch="arm64",
    image="Image",
    image_path="arch/arm64/boot/Image",
    qemu="qemu-system-aarch64",
    qemu_package="qemu-system-arm",
    machine="virt",
    # pauth-impdef: QEMU's cheaper pointer-auth algorithm; measurably faster boot under TCG.
    cpu="max,pauth-impdef=on",
    console="ttyAMA0",
    debian_arch="arm64",
    gnu_triplet="aarch64-linux-gnu",
    cross_package="gcc-aarch64-linux-gnu",
    max_cpus=8,  # virt with its default GICv2
)

ARCHES = {a.name: a for a in (X86_64, ARM64)}
ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64"}


def host_arch() -> str:
    m = platform.machine()
    return ALIASES.get(m, m)


def is_native(arch: Arch) -> bool:
    return host_arch() == arch.name


def get(name: str) -> Arch:
    key = ALIASES.get(name.strip(), name.strip())
    try:
        return ARCHES[key]
    except KeyError:
        raise UsageError(
            f"unknown arch '{name}': choose from {', '.join(ARCHES)}"
        ) from None


def parse_list(value: str) -> list[Arch]:
    """'x86_64,arm64' -> [X86_64, ARM64], keeping order, dropping duplicates."""
    out: list[Arch] = []
    for part in value.split(","):
        if not part.strip():
            continue
        a = get(part)
        if a not in out:
            out.append(a)
    if not out:
        raise UsageError("--arch needs at least one architecture")
    return out
