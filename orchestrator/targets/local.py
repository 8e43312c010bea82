"""The default target (`--target qemu`): a QEMU guest orch boots on this host, with orch's
initramfs, reached over SSH on a forwarded local port. KVM when a probe shows it boots a
kernel, else TCG."""

from __future__ import annotations

import shlex
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from orchestrator.base.errors import BootError, OrchError
from orchestrator.base.opt import BOOT, Opt
from orchestrator.base.retry import retrying, stop_after_attempt, wait_fixed
from orchestrator.base.runner import Runner
from orchestrator.kernel import arch as archmod
from orchestrator.kernel.arch import Arch
from orchestrator.targets import keys as keysmod
from orchestrator.targets import qemu
from orchestrator.targets.layout import TESTS_DIR
from orchestrator.targets.protocol import Machine, TargetBase, UpRequest, setting
from orchestrator.targets.rootfs import payload_dir
from orchestrator.targets.ssh import GuestSSH


@dataclass
class QemuTarget(TargetBase):
    """A QEMU guest orch boots, with orch's initramfs, SSH on a forwarded local port."""

    accel: str = setting("auto")  # auto | kvm | tcg
    memory: str = setting("1G")
    smp: int = setting(2)
    append: str = setting("")
    boot_timeout: float = setting(180.0)
    ssh_timeout: float = setting(60.0)
    own: dict[str, Any] = field(default_factory=dict)  # OPTIONS' values, by dest
    kind = "qemu"
    wants_initramfs = True
    remote = False
    runs_qemu_here = True
    SPEC = "qemu"
    SHORT = "qemu"
    # `orch boot` only: a run's tests would time out while gdb holds the guest stopped.
    OPTIONS = (
        Opt(("--gdb",), "gdb", "QEMU's gdbstub on a free 127.0.0.1 port; orch prints the "
            "gdb-multiarch command that attaches (the kernel boots with nokaslr)",
            kind="flag", default=False, commands=(BOOT,), step=False, example=True),
    )

    @classmethod
    def matches(cls, spec: str | None) -> bool:
        return spec in (None, "", "qemu")

    @classmethod
    def build(cls, spec: str | None, values: Mapping[str, Any]) -> QemuTarget:
        return cls(own=cls.own_values(values), **cls.common(values))

    def check(self, arch: Arch, runner: Runner) -> None:
        pass

    def cell(self) -> dict[str, str]:
        return {"kind": "qemu"}

    def properties(self) -> dict[str, str]:
        return {"target": "qemu"}

    def choose_accel(self, req: UpRequest) -> tuple[str, str]:
        a = req.arch
        if self.accel == "tcg" or not archmod.is_native(a):
            return "tcg", ("requested" if self.accel == "tcg"
                           else f"{a.name} guest on {archmod.host_arch()} host")
        assert req.kernel is not None
        ok, why = qemu.kvm_probe(a, req.kernel.image)
        if ok:
            return "kvm", why
        if self.accel == "kvm":
            raise BootError(f"--accel kvm requested but KVM does not work here: {why}")
        req.progress(f"[{a.name}] KVM not usable ({why}); falling back to TCG (slower)")
        return "tcg", why

    def spec(self, image: Path, initrd: Path, port: int, accel: str,
             gdb_port: int | None) -> qemu.BootSpec:
        """The guest's QEMU settings; with a gdbstub, no KASLR (gdb's symbols hold)."""
        append = f"{self.append} nokaslr".strip() if gdb_port is not None else self.append
        return qemu.BootSpec(image, initrd, port, accel, self.memory, self.smp, append,
                             gdb_port=gdb_port)

    def dry_run(self, req: UpRequest) -> list[str]:
        spec = self.spec(Path("IMAGE"), Path("INITRD"), 10022, "tcg",
                         1234 if self.gdb else None)
        return ["+ " + shlex.join(qemu.qemu_argv(req.arch, spec))]

    def announce_gdb(self, req: UpRequest, port: int) -> None:
        """The gdb command line, shown even with --quiet: it is what --gdb asked for."""
        k = req.kernel
        assert k is not None
        argv = qemu.gdb_argv(k.gdb_vmlinux, port, k.gdb_scripts)
        req.notice(f"[{req.arch.name}] gdb: {shlex.join(argv)}")
        if not k.gdb_vmlinux.exists():
            req.notice(f"[{req.arch.name}] gdb: no vmlinux stored for this kernel (stored "
                       f"before orch kept it, and its build dir has moved on): gdb attaches "
                       f"but has no symbols until it is built again")
        elif k.gdb_scripts is None:
            req.notice(f"[{req.arch.name}] gdb: symbols only; for the kernel's gdb scripts "
                       f"(lx-dmesg, lx-ps...) build with a --config fragment setting "
                       f"CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT=y and CONFIG_GDB_SCRIPTS=y")

    @contextmanager
    def up(self, req: UpRequest) -> Iterator[Machine]:
        a = req.arch
        assert req.kernel is not None and req.initrd is not None
        accel, reason = self.choose_accel(req)
        facts = req.facts
        facts.update(accelerator=accel, accelerator_reason=reason,
                     qemu_version=qemu.qemu_version(a))
        keys = keysmod.ensure(req.runner)
        # QEMU could not bind the forward's port (someone took it first): boot again.
        stack, g, port = retrying(f"[{a.name}] boot", qemu.PortClash, stop=stop_after_attempt(3),
                                  wait=wait_fixed(0), say=req.progress)(self.boot, req, accel)
        with stack:
            ssh = GuestSSH(port, keys)
            try:
                ssh.connect(self.ssh_timeout, alive=lambda: not g.exited.is_set(),
                            say=lambda m: req.status(f"[{a.name}] {m}"))
            except OrchError:
                if g.panicked.is_set():
                    raise BootError(f"kernel panic: {g.first_problem()}",
                                    hint=g.excerpt()) from None
                raise
            facts["boot_to_ssh"] = round(time.monotonic() - g.started_at, 2)
            facts["port"] = port
            facts["release"] = g.marker.split()[-1] if g.marker else ""
            req.progress(f"[{a.name}] booted {facts['release']} under "
                         f"{accel.upper()}: init {facts['boot_to_ready']}s, "
                         f"SSH {facts['boot_to_ssh']}s")
            try:
                yield Machine(ssh, TESTS_DIR, facts, guest=g,
                              dirs={n: payload_dir(n) for n in req.payload})
            finally:
                ssh.close()

    def boot(self, req: UpRequest, accel: str) -> tuple[ExitStack, qemu.Guest, int]:
        """A guest up to init's "ready" line, with its ports held, all in the ExitStack
        returned (closed here when the boot fails)."""
        a = req.arch
        assert req.kernel is not None and req.initrd is not None
        with ExitStack() as stack:
            port = stack.enter_context(qemu.reserved_port())
            gdb_port = stack.enter_context(qemu.reserved_port()) if self.gdb else None
            spec = self.spec(req.kernel.image, req.initrd, port, accel, gdb_port)
            if gdb_port is not None:
                req.facts["gdb"] = f"127.0.0.1:{gdb_port}"
                self.announce_gdb(req, gdb_port)
            req.console.unlink(missing_ok=True)
            g = stack.enter_context(qemu.Guest(a, spec, req.console, runner=req.runner))
            req.status(f"[{a.name}] booting ({accel})")
            req.facts["boot_to_ready"] = round(g.wait_ready(self.boot_timeout), 2)
            return stack.pop_all(), g, port
