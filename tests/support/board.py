"""A board for `--target ssh://` that fits on this machine: an orch-built kernel booted in
a QEMU that orch's run did not start, behaving like a lab machine.

Its initramfs has Debian's busybox, dropbear and kexec-tools (with their libraries), an SSH
host key of its own that stays the same across kexec, and it keeps a copy of itself at
`/boot/initrd.cpio` so a kexec'd kernel can be given the same userland
(`--target-initrd /boot/initrd.cpio`). The slow tests and ci/benchmark.py use it.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.base.runner import Runner
from orchestrator.kernel.arch import Arch
from orchestrator.targets import keys as keysmod
from orchestrator.targets import qemu, rootfs

# kexec-tools and its library closure (Debian 12 builds it with Xen support), with the
# guest's own userland.
PACKAGES = rootfs.PACKAGES + [
    "kexec-tools", "libxenmisc4.17", "libext2fs2", "liblzma5", "libuuid1", "libxencall1",
    "libxendevicemodel1", "libxenevtchn1", "libxenforeignmemory1", "libxengnttab1",
    "libxenhypfs1", "libxenstore4", "libxentoolcore1", "libxentoollog1", "libyajl2",
    "libzstd1", "libcom-err2",
]
INITRD_COPY = "/boot/initrd.cpio"

# The guest's init, plus: a copy of the root filesystem as it was unpacked (before sshd
# writes anything), for the next kernel; and a board name.
INIT = rootfs.INIT.replace(
    "hostname orch-guest\n",
    "hostname orch-board\n"
    "mkdir -p /boot\n"
    "(cd / && find . -xdev ! -path ./boot/initrd.cpio | cpio -o -H newc "
    f"> {INITRD_COPY} 2>/dev/null)\n",
)


def initramfs(arch: Arch, keydir: Path, runner: Runner, progress=print) -> Path:
    """The board's initramfs (cached by content), with its keys kept in `keydir`."""
    keys = keysmod.ensure(runner, keydir)
    return rootfs.build_initramfs(arch, keys, [], runner, progress, init=INIT,
                                  extra=("/sbin/kexec",), packages=PACKAGES,
                                  name=f"{arch.debian_arch}-board")


def keys(runner: Runner, keydir: Path) -> keysmod.Keys:
    return keysmod.ensure(runner, keydir)


def spec(arch: Arch, kernel: Path, initrd: Path, port: int, append: str = "",
         memory: str = "1G", smp: int = 2) -> qemu.BootSpec:
    # arm64: QEMU's virt machine puts a kaslr-seed in the device tree, and a kernel built
    # without RANDOMIZE_BASE (orch's tinyconfig-based one) never wipes it; kexec-tools then
    # refuses to hand the tree on ("kaslr-seed is not wiped to 0"). Boards whose firmware
    # gives no seed are the common case: so does this one.
    opts = "dtb-kaslr-seed=off" if arch.name == "arm64" else ""
    return qemu.BootSpec(kernel, initrd, port, "tcg", memory, smp, append, opts)
