"""Where the tests run. A target is a record chosen by name (`--target qemu`, the default,
or `--target ssh://[user@]host[:port]`), in the manner of tuxlava's `Device.select`:

- `wants_initramfs`: whether the run builds a root filesystem for it (QEMU boots orch's
  initramfs; a machine over SSH has its own userland, so that stage does not exist for it);
- `up(request)`: a context manager that makes the kernel run there (boot it, or deploy it)
  and yields a `Machine`: a session that runs commands and takes uploads, where the test
  binaries are, and the facts that go into the results (accelerator, host, deploy time);
- `cell()` and `properties()`: what identifies the target in results and JUnit.
"""

from __future__ import annotations

import re
import shlex
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from orchestrator.base.errors import BootError, InfraError, OrchError, SSHError, UsageError
from orchestrator.base.opt import RUN, Opt, abs_path
from orchestrator.base.runner import Runner
from orchestrator.kernel import arch as archmod
from orchestrator.kernel.arch import Arch
from orchestrator.kernel.build import Kernel
from orchestrator.targets import keys as keysmod
from orchestrator.targets import qemu
from orchestrator.targets.rootfs import TESTS_DIR
from orchestrator.targets.ssh import Address, GuestSSH, RemoteSSH, Session, parse_address


@dataclass
class UpRequest:
    """What a target is given to run a kernel: from the run's earlier stages."""

    arch: Arch
    kernel: Kernel | None  # None: nothing built (--no-deploy does not need it)
    initrd: Path | None  # only for targets that want one
    tests: list[Path]  # the static selftest binaries on this host
    console: Path  # where a serial console goes, when the target has one
    runner: Runner
    progress: Callable[[str], None] = print
    status: Callable[[str], None] = lambda msg: None
    # What the target finds out on the way (also when it fails: the deploy time, the
    # kernel that answered): the run records it either way.
    facts: dict[str, object] = field(default_factory=dict)


@dataclass
class Machine:
    """A target that is up: run commands on `session`; test binaries are in `tests_dir`."""

    session: Session
    tests_dir: str
    facts: dict[str, object] = field(default_factory=dict)
    guest: qemu.Guest | None = None  # its console tells a kernel crash from a lost machine


class Target(Protocol):
    kind: str
    wants_initramfs: bool
    remote: bool  # a machine orch does not start: checked before anything slow

    def check(self, arch: Arch, runner: Runner) -> None: ...

    def cell(self) -> dict[str, str]: ...

    def properties(self) -> dict[str, str]: ...

    def dry_run(self, req: UpRequest) -> list[str]: ...

    def up(self, req: UpRequest) -> Iterator[Machine]: ...


# --- QEMU --------------------------------------------------------------------------------

@dataclass
class QemuTarget:
    """A QEMU guest orch boots, with orch's initramfs, SSH on a forwarded local port."""

    accel: str = "auto"  # auto | kvm | tcg
    memory: str = "1G"
    smp: int = 2
    append: str = ""
    boot_timeout: float = 180.0
    ssh_timeout: float = 60.0
    kind: str = "qemu"
    wants_initramfs: bool = True
    remote: bool = False

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

    def dry_run(self, req: UpRequest) -> list[str]:
        spec = qemu.BootSpec(Path("IMAGE"), Path("INITRD"), 10022, "tcg", self.memory,
                             self.smp, self.append)
        return ["+ " + shlex.join(qemu.qemu_argv(req.arch, spec))]

    @contextmanager
    def up(self, req: UpRequest) -> Iterator[Machine]:
        a = req.arch
        assert req.kernel is not None and req.initrd is not None
        accel, reason = self.choose_accel(req)
        facts = req.facts
        facts.update(accelerator=accel, accelerator_reason=reason,
                     qemu_version=qemu.qemu_version(a))
        keys = keysmod.ensure(req.runner)
        for attempt in range(3):
            with qemu.reserved_port() as port:
                spec = qemu.BootSpec(req.kernel.image, req.initrd, port, accel, self.memory,
                                     self.smp, self.append)
                req.console.unlink(missing_ok=True)
                with qemu.Guest(a, spec, req.console) as g:
                    req.status(f"[{a.name}] booting ({accel})")
                    try:
                        facts["boot_to_ready"] = round(g.wait_ready(self.boot_timeout), 2)
                    except qemu.PortClash:
                        if attempt == 2:
                            raise
                        continue
                    ssh = GuestSSH(port, keys)
                    try:
                        ssh.connect(self.ssh_timeout, alive=lambda: not g.exited.is_set())
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
                        yield Machine(ssh, TESTS_DIR, facts, guest=g)
                    finally:
                        ssh.close()
                    return


# --- a machine over SSH ------------------------------------------------------------------

DEPLOY_MODES = ("kexec", "reboot-cmd", "none")

# The ssh target's own options: declared here once; orchestrator.options takes them in.
OPTIONS: list[Opt] = [
    Opt(("--known-hosts",), "known_hosts", "--target ssh: the known_hosts file to check the "
        "machine's host key against (default: ~/.ssh/known_hosts); an unknown key is never "
        "accepted", type=Path, fmt=abs_path, example=Path("/tmp/known_hosts")),
    Opt(("--no-deploy",), "no_deploy", "--target ssh: test the kernel already running "
        "there (a distro or vendor kernel)", kind="flag", default=False, example=True),
    Opt(("--reboot-cmd",), "reboot_cmd", "--target ssh: instead of kexec, run this command "
        "here to install the kernel ($ORCH_KERNEL) and reboot the machine", metavar="CMD",
        example="lab-deploy board"),
    Opt(("--target-initrd",), "target_initrd", "--target ssh: an initrd on the machine for "
        "the kexec'd kernel (default: none)", metavar="PATH", example="/boot/initrd.img"),
    Opt(("--reboot-after",), "reboot_after", "--target ssh: reboot the machine when done "
        "(back to its own kernel); default: leave it running the tested kernel", kind="flag",
        default=False, commands=(RUN,), example=True),
]


@dataclass
class SshTarget:
    """A machine orch did not start, reached over SSH. The kernel orch built is deployed
    by kexec (default), by the user's `--reboot-cmd`, or not at all (`--no-deploy`)."""

    address: Address
    known_hosts: Path | None = None
    deploy: str = "kexec"
    reboot_cmd: str | None = None
    target_initrd: str | None = None
    append: str = ""
    boot_timeout: float = 180.0  # kexec (or reboot) to SSH back
    ssh_timeout: float = 60.0  # the first connection
    reboot_after: bool = False
    kind: str = "ssh"
    wants_initramfs: bool = False
    remote: bool = True

    def __post_init__(self) -> None:
        if self.deploy not in DEPLOY_MODES:
            raise UsageError(f"deploy mode {self.deploy}: choose {', '.join(DEPLOY_MODES)}")
        if self.deploy == "reboot-cmd" and not self.reboot_cmd:
            raise UsageError("--reboot-cmd needs a command")
        if self.known_hosts is not None and not self.known_hosts.is_file():
            raise UsageError(f"--known-hosts {self.known_hosts}: no such file")

    @property
    def host(self) -> str:
        port = f":{self.address.port}" if self.address.port else ""
        return f"{self.address.host}{port}"

    def cell(self) -> dict[str, str]:
        return {"kind": "ssh", "host": self.host}

    def properties(self) -> dict[str, str]:
        return {"target": f"ssh://{self.host}", "deploy": self.deploy}

    def dry_run(self, req: UpRequest) -> list[str]:
        plan = [f"+ {self.address}: uname -m; id -u; df"]
        if self.deploy == "kexec":
            plan.append(f"+ {self.address}: upload {req.arch.image_path.split('/')[-1]}; "
                        f"kexec -l IMAGE{self._initrd_arg()} --command-line=\"$(cat "
                        f"/proc/cmdline) {self.append}\"; kexec -e")
        elif self.deploy == "reboot-cmd":
            plan.append(f"+ {self.reboot_cmd}   (ORCH_KERNEL=IMAGE ORCH_TARGET={self.host})")
        plan.append(f"+ {self.address}: upload selftests to a temporary directory, run")
        return plan

    def check(self, arch: Arch, runner: Runner) -> None:
        """Before the build: the machine answers, is `arch`, and we are root (or sudo)."""
        sess = self._connect(self.ssh_timeout)
        try:
            self.preflight(sess, UpRequest(arch, None, None, [], Path("/dev/null"), runner))
        finally:
            sess.close()

    def _initrd_arg(self) -> str:
        return f" --initrd={shlex.quote(self.target_initrd)}" if self.target_initrd else ""

    def _connect(self, timeout: float) -> RemoteSSH:
        s = RemoteSSH(self.address, self.known_hosts)
        s.connect(timeout)
        return s

    @contextmanager
    def up(self, req: UpRequest) -> Iterator[Machine]:
        a = req.arch
        req.status(f"[{a.name}] connecting to {self.address}")
        facts = req.facts
        facts.update(host=self.host, deploy=self.deploy)
        sess = self._connect(self.ssh_timeout)
        tmp = ""
        try:
            self.preflight(sess, req)
            if self.deploy != "none":
                assert req.kernel is not None
                sess = self.deploy_kernel(sess, req, facts)
            facts["release"] = _out(sess, "uname -r")
            facts["kernel_version"] = _out(sess, "cat /proc/version")
            tmp = _out(sess, 'mktemp -d "${TMPDIR:-/tmp}/orch.XXXXXXXX"', "mktemp -d")
            for t in req.tests:
                req.status(f"[{a.name}] uploading {t.name}")
                sess.put(t, f"cat > {shlex.quote(f'{tmp}/{t.name}')} && "
                            f"chmod 755 {shlex.quote(f'{tmp}/{t.name}')}")
            yield Machine(sess, tmp, facts)
        finally:
            if sess.conn is not None:  # not when the deployed kernel never came back
                if tmp:  # a test still running there (orch was interrupted) goes too
                    sess.run(f"{_kill_running_from(tmp)}; rm -rf {shlex.quote(tmp)}",
                             timeout=60)
                if self.reboot_after:
                    req.progress(f"[{a.name}] rebooting {self.host} (--reboot-after)")
                    sess.run(_detached("if [ -d /run/systemd/system ]; then systemctl "
                                       "reboot; else reboot; fi"), timeout=30)
            sess.close()

    def preflight(self, sess: Session, req: UpRequest) -> None:
        """The machine is the arch we built for, we are root (or sudo), there is room."""
        machine = _out(sess, "uname -m")
        got = archmod.ALIASES.get(machine, machine)
        if got != req.arch.name:
            raise InfraError(f"{self.host} is {machine}, not {req.arch.name} "
                             f"(--arch {got}?)", stage="preflight")
        if _out(sess, "id -u") != "0":
            if sess.run("sudo -n true", timeout=30).exit_code != 0:
                raise InfraError(f"{self.host}: orch needs root or passwordless sudo "
                                 f"(logged in as {_out(sess, 'id -un')})", stage="preflight")
            sess.sudo = True
        need = sum(t.stat().st_size for t in req.tests)
        if self.deploy == "kexec" and req.kernel is not None:
            need += req.kernel.image.stat().st_size
        free_kb = _out(sess, 'df -Pk "${TMPDIR:-/tmp}" | awk \'NR==2{print $4}\'')
        if free_kb.isdigit() and int(free_kb) * 1024 < need + (8 << 20):
            raise InfraError(f"{self.host}: {int(free_kb) // 1024} MiB free in its temporary "
                             f"directory, {need // (1 << 20) + 8} MiB needed",
                             stage="preflight")

    def deploy_kernel(self, sess: Session, req: UpRequest, facts: dict) -> Session:
        """Make the built kernel run on the machine; returns the session to the new kernel."""
        kernel = req.kernel
        assert kernel is not None
        want = kernel.info().get("release", "")
        boot_id = _out(sess, "cat /proc/sys/kernel/random/boot_id")
        if self.deploy == "kexec":
            self.kexec_load(sess, req)
            req.progress(f"[{req.arch.name}] {self.host}: kexec into {want} "
                         f"(key {kernel.key[:12]})")
            started = time.monotonic()
            sess.run(_detached("PATH=$PATH:/sbin:/usr/sbin; sync; if [ -d /run/systemd/system "
                               "]; then systemctl kexec; else kexec -e; fi"), timeout=30)
        else:
            started = time.monotonic()
            self.run_reboot_cmd(req)
        sess.close()
        new = self.wait_back(boot_id, started)
        new.sudo = sess.sudo
        facts["deploy_seconds"] = round(time.monotonic() - started, 2)
        release = _out(new, "uname -r")
        version = _out(new, "cat /proc/version")
        facts.update(release=release, kernel_version=version)
        if release != want or f"@{kernel.stamp})" not in version:
            m = re.search(r"\(([^()\s]+@[^()\s]+)\)", version)
            raise InfraError(f"{self.host} runs {release} built by "
                             f"{m.group(1) if m else '?'}, not the kernel orch built "
                             f"({want}, built by orch@{kernel.stamp})", stage="deploy")
        req.progress(f"[{req.arch.name}] {self.host}: running {release} "
                     f"(stamp verified), {facts['deploy_seconds']}s from "
                     f"{'kexec' if self.deploy == 'kexec' else 'reboot'} to SSH")
        return new

    def kexec_load(self, sess: Session, req: UpRequest) -> None:
        kernel = req.kernel
        assert kernel is not None
        path = "PATH=$PATH:/sbin:/usr/sbin; "
        if sess.run(path + "command -v kexec", timeout=30).exit_code != 0:
            raise InfraError(f"{self.host}: kexec not found (install kexec-tools there)",
                             stage="deploy")
        if self.target_initrd and \
                sess.run(f"test -r {shlex.quote(self.target_initrd)}").exit_code != 0:
            raise UsageError(f"--target-initrd {self.target_initrd}: not found on "
                             f"{self.host}", stage="deploy")
        cmdline = " ".join(w for w in _out(sess, "cat /proc/cmdline").split()
                           if not w.startswith(("BOOT_IMAGE=", "initrd=")))
        if self.append:
            cmdline = f"{cmdline} {self.append}".strip()
        tmp = _out(sess, 'mktemp -d "${TMPDIR:-/tmp}/orch.XXXXXXXX"', "mktemp -d")
        image = f"{tmp}/{kernel.image.name}"
        try:
            req.status(f"[{req.arch.name}] uploading {kernel.image.name} to {self.host}")
            sess.put(kernel.image, f"cat > {shlex.quote(image)}")
            res = sess.run(f"{path}kexec -l {shlex.quote(image)}{self._initrd_arg()} "
                           f"--command-line={shlex.quote(cmdline)}", timeout=120)
        finally:
            # kexec -l has copied the image into kernel memory: nothing stays on disk.
            sess.run(f"rm -rf {shlex.quote(tmp)}", timeout=60)
        if res.exit_code != 0:
            why = (res.stderr or res.stdout).strip().splitlines()
            raise InfraError(f"{self.host}: kexec refused the kernel: "
                             f"{why[-1] if why else f'exit {res.exit_code}'}", stage="deploy")

    def run_reboot_cmd(self, req: UpRequest) -> None:
        """The user's own install-and-reboot script, on this host, with the kernel named in
        its environment. An argv (shlex-split), never a shell."""
        kernel = req.kernel
        assert kernel is not None and self.reboot_cmd
        env = {"ORCH_KERNEL": str(kernel.image), "ORCH_KERNEL_RELEASE":
               kernel.info().get("release", ""), "ORCH_KERNEL_STAMP": kernel.stamp,
               "ORCH_ARCH": req.arch.name, "ORCH_TARGET": str(self.address),
               "ORCH_TARGET_HOST": self.address.host}
        req.progress(f"[{req.arch.name}] {self.host}: running --reboot-cmd")
        res = req.runner.run(shlex.split(self.reboot_cmd), env=env, timeout=self.boot_timeout)
        if not res.ok:
            last = next((ln for ln in reversed(res.tail) if ln.strip()), "")
            raise InfraError(f"--reboot-cmd failed (exit {res.returncode}): {last.strip()}",
                             stage="deploy")

    def wait_back(self, old_boot_id: str, started: float) -> Session:
        """Until the machine answers SSH with a new boot id, within boot_timeout."""
        deadline = started + self.boot_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            left = deadline - time.monotonic()
            try:
                # Short attempts: while the new kernel boots, the forward (or a NAT, or a
                # switch) may accept the TCP connection and then say nothing at all.
                s = self._connect(min(3.0, max(1.0, left)))
            except SSHError as exc:
                if "host key" in str(exc):  # another machine (or userland) answers: stop
                    raise
                last = str(exc)
                time.sleep(0.5)
                continue
            res = s.run("cat /proc/sys/kernel/random/boot_id", timeout=30)
            if res.exit_code == 0 and res.stdout.strip() != old_boot_id:
                return s
            s.close()  # still the old kernel: kexec -e has not happened yet
            last = "the old kernel still answers"
            time.sleep(0.5)
        raise InfraError(f"the new kernel never came back: no SSH from {self.host} within "
                         f"{self.boot_timeout:.0f}s of {self.deploy} ({last})", stage="deploy")


def _out(sess: Session, command: str, what: str | None = None) -> str:
    res = sess.run(command, timeout=60)
    if res.exit_code != 0:
        raise SSHError(f"{what or command} failed on {sess.where}: "
                       f"{(res.stderr or res.stdout).strip()[:200] or res.exit_code}")
    return res.stdout.strip()


def _kill_running_from(path: str) -> str:
    """Shell that SIGKILLs every process whose command line names `path`/ (a test, and the
    `timeout` watching it), except the shell itself and its parent (sudo). No pkill: a
    busybox board may not have it; and busybox grep stops at a NUL, hence the tr."""
    pat = shlex.quote(path.rstrip("/") + "/")
    return (f'for d in /proc/[0-9]*; do p=${{d#/proc/}}; [ "$p" = "$$" ] || '
            f'[ "$p" = "$PPID" ] || ! tr "\\0" " " < "$d/cmdline" 2>/dev/null | '
            f'grep -qF {pat} || kill -9 "$p" 2>/dev/null; done')


def _detached(command: str) -> str:
    """Run after this SSH session has gone (kexec -e and reboot take the session down)."""
    return (f"setsid sh -c {shlex.quote('sleep 1; ' + command)} "
            f"</dev/null >/dev/null 2>&1 &")


# --- selection ---------------------------------------------------------------------------

SSH_SPEC = re.compile(r"^ssh://")


def select(spec: str | None, **opts) -> Target:
    """`qemu` (default) or `ssh://[user@]host[:port]`; `opts` are the target's options."""
    if spec in (None, "", "qemu"):
        return QemuTarget(**{k: v for k, v in opts.items() if k in QEMU_OPTS})
    if SSH_SPEC.match(spec):
        return SshTarget(parse_address(spec),
                         **{k: v for k, v in opts.items() if k in SSH_OPTS})
    raise UsageError(f"--target {spec}: expected qemu or ssh://[user@]host[:port]")


QEMU_OPTS = {"accel", "memory", "smp", "append", "boot_timeout", "ssh_timeout"}
SSH_OPTS = {"known_hosts", "deploy", "reboot_cmd", "target_initrd", "append", "boot_timeout",
            "ssh_timeout", "reboot_after"}


def make(opts) -> Target:
    """The target a run's options (orchestrator.options.Options) ask for, validated."""
    if opts.no_deploy and opts.reboot_cmd:
        raise UsageError("--no-deploy and --reboot-cmd: choose one")
    deploy = "none" if opts.no_deploy else "reboot-cmd" if opts.reboot_cmd else "kexec"
    t = select(opts.target, accel=opts.accel, memory=opts.memory, smp=opts.smp,
                       append=opts.append, boot_timeout=opts.boot_timeout,
                       ssh_timeout=opts.ssh_timeout, known_hosts=opts.known_hosts,
                       deploy=deploy, reboot_cmd=opts.reboot_cmd,
                       target_initrd=opts.target_initrd, reboot_after=opts.reboot_after)
    ssh_only = [n for n, v in (("--known-hosts", opts.known_hosts),
                               ("--no-deploy", opts.no_deploy),
                               ("--reboot-cmd", opts.reboot_cmd),
                               ("--target-initrd", opts.target_initrd),
                               ("--reboot-after", opts.reboot_after)) if v]
    if t.kind == "qemu" and ssh_only:
        raise UsageError(f"{ssh_only[0]} is for --target ssh://...")
    if t.remote and len(opts.arches) != 1:
        raise UsageError(f"--target {opts.target}: one machine is one arch; give one --arch")
    return t
