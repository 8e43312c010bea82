"""QEMU: argv built by pure functions, the KVM probe, and a guest whose lifetime is bound
to a `with` block (killed on success, failure, timeout and Ctrl-C alike).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from orchestrator.base.errors import BootError, MissingToolError
from orchestrator.base.runner import Child, Runner, quote
from orchestrator.kernel import problems
from orchestrator.kernel.arch import Arch, is_native
from orchestrator.store import cache
from orchestrator.targets.layout import READY_MARKER

FATAL_RE = re.compile(r"(Kernel panic - not syncing|---\[ end Kernel panic)")
# The SSH forward's port (user networking) or the gdbstub's, taken by someone else first.
PORT_CLASH_RE = re.compile(r"could not set up host forwarding rule|-gdb tcp:.*(in use|"
                           r"available port)", re.IGNORECASE)

@dataclass(frozen=True)
class BootSpec:
    kernel: Path
    initrd: Path | None
    port: int | None  # host port forwarded to guest :22 (on 127.0.0.1 only)
    accel: str  # "kvm" or "tcg"
    memory: str = "1G"
    smp: int = 2
    append: str = ""
    machine_opts: str = ""  # appended to -M MACHINE (e.g. "dtb-kaslr-seed=off")
    gdb_port: int | None = None  # QEMU's gdbstub, on 127.0.0.1 only


def cmdline(arch: Arch, extra: str = "") -> str:
    parts = [f"console={arch.console}", "panic=-1",
             "rdinit=/init", "printk.time=1"]
    if arch.name == "x86_64":
        parts.append("earlyprintk=serial")
    parts.append(extra)
    return " ".join(p for p in parts if p)


def qemu_argv(arch: Arch, spec: BootSpec) -> list[str]:
    """The full QEMU command line (pure: unit-tested)."""
    machine = f"{arch.machine},{spec.machine_opts}" if spec.machine_opts else arch.machine
    argv = [arch.qemu, "-M", machine, "-m", spec.memory, "-smp", str(spec.smp),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", "stdio", "-kernel", str(spec.kernel)]
    if spec.accel == "kvm":
        argv += ["-accel", "kvm", "-cpu", "host"]
    else:
        argv += ["-accel", "tcg,thread=multi", "-cpu", arch.cpu]
    if spec.initrd:
        argv += ["-initrd", str(spec.initrd)]
    if spec.port is not None:
        argv += ["-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{spec.port}-:22",
                 "-device", "virtio-net-pci,netdev=n0"]
    else:
        argv += ["-nic", "none"]
    if spec.gdb_port is not None:
        argv += ["-gdb", f"tcp:127.0.0.1:{spec.gdb_port}"]
    argv += ["-append", cmdline(arch, spec.append)]
    return argv


def gdb_argv(vmlinux: Path, port: int, scripts: Path | None = None) -> list[str]:
    """The gdb command that attaches to a guest's gdbstub (pure: unit-tested): gdb-multiarch
    reads the arch from vmlinux; the kernel's gdb scripts (lx-dmesg, lx-ps...) when given."""
    argv = ["gdb-multiarch", str(vmlinux)]
    if scripts is not None:
        argv += ["-ex", f"add-auto-load-safe-path {scripts.parent}",
                 "-ex", f"source {scripts}"]
    return argv + ["-ex", f"target remote 127.0.0.1:{port}"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortClash(BootError):
    """QEMU could not bind the forward's host port: someone took it first. Retried."""


@contextmanager
def reserved_port() -> Iterator[int]:
    """A host port for a guest's SSH forward, held until the block ends.

    The kernel picks a free port (bind to port 0), and a lock file per port, held for the
    guest's lifetime, keeps another orch run from picking the same one in the window before
    QEMU binds it. A program outside orch can still take it in that window: QEMU then fails
    to bind (`PortClash`) and the caller boots again on another port, so two guests never
    share a forward.
    """
    locks = cache.subdir("locks", "ports")
    for _ in range(50):
        port = free_port()
        f = open(locks / f"{port}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        try:
            yield port
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()
        return
    raise BootError("no free host port for the SSH forward after 50 tries")


def qemu_version(arch: Arch) -> str:
    exe = require(arch)
    out = Runner().run([exe, "--version"], always=True).output
    return out.splitlines()[0] if out else ""


def require(arch: Arch) -> str:
    exe = shutil.which(arch.qemu)
    if not exe:
        raise MissingToolError(f"{arch.qemu} not found (apt-get install {arch.qemu_package})")
    return exe


QEMU_ERROR_RE = re.compile(r"^(qemu-system-[\w.-]+|qemu): ")


def qemu_error_line(lines: list[str]) -> str:
    """QEMU's own error line ("qemu-system-x86_64: -m lots: Parameter 'size' expects...")
    rather than whatever it printed last (often a fragment of its help text)."""
    for ln in lines:
        if QEMU_ERROR_RE.match(ln):
            return ln.strip()
    return next((ln.strip() for ln in reversed(lines) if ln.strip()), "no output")


def exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class Guest:
    """A running QEMU. Use as a context manager; the process dies when the block ends.

    It is a `Runner.spawn` child: orch's watchdog kills it when orch ends however it ends
    (a SIGKILL too), where it once had its own PR_SET_PDEATHSIG and an atexit list. Those
    went: PDEATHSIG fires when the *thread* that started QEMU ends (not orch), and the
    watchdog covers both."""

    def __init__(self, arch: Arch, spec: BootSpec, console_log: Path, echo=None,
                 runner: Runner | None = None):
        self.arch = arch
        self.runner = runner or Runner()
        self.spec = spec
        self.console_log = console_log
        self.argv = qemu_argv(arch, spec)
        self.child: Child | None = None
        self.proc = None  # QEMU's Popen, once the block began (self.child.proc)
        self.ready = threading.Event()
        self.panicked = threading.Event()
        self.exited = threading.Event()
        self.lines: deque[str] = deque(maxlen=5000)
        self.problem_at: int | None = None  # index in self.lines of the first problem line
        self._nlines = 0
        self.marker = ""
        self.echo = echo
        self.started_at = 0.0
        self.ready_at = 0.0

    def __enter__(self) -> "Guest":
        require(self.arch)
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        # grace 0: SIGKILL at once when the block ends (no disk: nothing to flush)
        self.child = self.runner.spawn(self.argv, grace=0)
        self.proc = self.child.proc
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.child is None:
            return
        self.child.stop()
        self._reader.join(timeout=5)

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        with open(self.console_log, "a", encoding="utf-8", errors="replace") as log:
            log.write(f"# {quote(self.argv)}\n")
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                log.write(line + "\n")
                log.flush()
                self.lines.append(line)
                self._nlines += 1
                if self.echo:
                    self.echo(line)
                if READY_MARKER in line and not self.ready.is_set():
                    self.marker = line
                    self.ready_at = time.monotonic()
                    self.ready.set()
                if self.problem_at is None and problems.is_problem(line):
                    self.problem_at = self._nlines
                if FATAL_RE.search(line):
                    self.panicked.set()
        self.exited.set()

    def excerpt(self, n: int = 25) -> str:
        """The console lines from the first kernel problem line on (or the last n lines)."""
        lines = list(self.lines)
        if self.problem_at is not None:
            start = max(0, len(lines) - (self._nlines - self.problem_at) - 1)
            return "\n".join(lines[start:start + n])
        return "\n".join(lines[-n:])

    def mark(self) -> int:
        """How many console lines so far: pass it to problem_since() later."""
        return self._nlines

    def problem_since(self, mark: int, n: int = 60) -> tuple[str, str] | None:
        """The first kernel problem line (kernel/problems.py) after console line `mark`,
        with the n lines from it on; None when there is none."""
        lines = list(self.lines)
        first = self._nlines - len(lines)  # console line number of lines[0]
        for i in range(max(0, mark - first), len(lines)):
            if problems.is_problem(lines[i]):
                return lines[i].strip(), "\n".join(lines[i:i + n])
        return None

    def first_problem(self) -> str:
        ex = self.excerpt(1).strip()
        return ex

    def wait_ready(self, timeout: float) -> float:
        """Wait until init says it started sshd; returns seconds since QEMU start."""
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if self.ready.wait(0.05):
                return self.ready_at - self.started_at
            if self.panicked.is_set():
                time.sleep(0.5)  # let the rest of the trace reach the log
                raise BootError(f"kernel panic during boot: {self.first_problem()}",
                                hint=self.excerpt())
            if self.exited.is_set():
                self.proc.wait()  # type: ignore[union-attr]
                if any(PORT_CLASH_RE.search(ln) for ln in self.lines):
                    raise PortClash(f"host port {self.spec.port} taken before QEMU bound it")
                raise BootError(f"QEMU {exit_status(self.proc.returncode)} before the guest "
                                f"was up: {qemu_error_line(list(self.lines))}",
                                hint=self.excerpt())
        raise BootError(f"boot timeout: guest not up after {timeout:.0f}s "
                        f"(last console line: {self.lines[-1] if self.lines else 'none'})",
                        hint=self.excerpt())


# --- KVM ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class KvmDevice:
    """Whether /dev/kvm is there and opens (KVM can be tried), and if not, why not."""

    usable: bool
    why_not: str = ""


def kvm_device() -> KvmDevice:
    """/dev/kvm: can KVM even be tried here? (Whether it boots a kernel: kvm_probe.)"""
    if not os.path.exists("/dev/kvm"):
        return KvmDevice(False, "/dev/kvm does not exist")
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError as exc:
        return KvmDevice(False, f"/dev/kvm cannot be opened ({exc.strerror})")
    return KvmDevice(True)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def kvm_probe(arch: Arch, kernel: Path, timeout: float = 10.0) -> tuple[bool, str]:
    """Does KVM really boot a kernel here? Boots `kernel` under KVM until it prints its banner.

    /dev/kvm existing is not enough (e.g. a paravirtual nested hypervisor on which QEMU
    aborts or the guest hangs silently). Cached per host boot and QEMU version.
    """
    if not is_native(arch):
        return False, f"{arch.name} guest on a {os.uname().machine} host: TCG"
    dev = kvm_device()
    if not dev.usable:
        return False, dev.why_not
    qv = qemu_version(arch)
    cache_file = cache.subdir("probe") / f"kvm-{cache.digest(_boot_id(), qv, arch.name)[:16]}.json"
    try:
        data = json.loads(cache_file.read_text())
        return data["ok"], data["why"]
    except (OSError, ValueError, KeyError):
        pass
    log = cache.subdir("probe") / "kvm-probe-console.log"
    log.unlink(missing_ok=True)
    spec = BootSpec(kernel=kernel, initrd=None, port=None, accel="kvm", memory="256M", smp=1)
    ok, why = False, ""
    with Guest(arch, spec, log) as g:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("Linux version" in ln for ln in list(g.lines)):
                ok, why = True, "KVM booted a kernel"
                break
            if g.exited.is_set():
                last = g.lines[-1] if g.lines else "no output"
                why = f"QEMU with KVM exited: {last}"
                break
            time.sleep(0.05)
        else:
            why = f"a kernel under KVM printed nothing in {timeout:.0f}s (a hypervisor that " \
                  f"exposes /dev/kvm but cannot run this guest)"
    cache_file.write_text(json.dumps({"ok": ok, "why": why}))
    return ok, why
