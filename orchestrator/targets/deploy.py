"""How the ssh target makes the kernel orch built run on the machine: deploy modes as
classes chosen by name (`DEPLOY`), each with its dry-run text and its deploy.

- `kexec` (default): upload the image, `kexec -l` it with the running command line, `kexec
  -e`;
- `reboot-cmd` (`--reboot-cmd CMD`): the user's own install-and-reboot script, run here;
- `none` (`--no-deploy`): test the kernel the machine already runs.

A mode that boots a new kernel then waits for SSH from a new boot and checks that the kernel
that answers is the one orch built (`NewKernel`). Adding a mode is one class and its entry
in `DEPLOY`; the option that asks for it goes in `OPTIONS` (the ssh target takes them in),
and the class names it in `selected_by`.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Protocol

from orchestrator.base.errors import HostKeyError, InfraError, SSHError, UsageError
from orchestrator.base.opt import Opt
from orchestrator.base.retry import retrying, stop_after_delay, wait_fixed
from orchestrator.targets.protocol import UpRequest
from orchestrator.targets.ssh import Address, RemoteSSH, Session, detached, out

# The deploy modes' options (the ssh target's, in its OPTIONS): declared here once.
OPTIONS: tuple[Opt, ...] = (
    Opt(("--no-deploy",), "no_deploy", "--target ssh: test the kernel already running "
        "there (a distro or vendor kernel)", kind="flag", default=False, example=True),
    Opt(("--reboot-cmd",), "reboot_cmd", "--target ssh: instead of kexec, run this command "
        "here to install the kernel ($ORCH_KERNEL) and reboot the machine", metavar="CMD",
        example="lab-deploy board"),
    Opt(("--target-initrd",), "target_initrd", "--target ssh: an initrd on the machine for "
        "the kexec'd kernel (default: none)", metavar="PATH", example="/boot/initrd.img"),
)


class Remote(Protocol):
    """What a deploy mode uses of the ssh target."""

    address: Address
    append: str
    boot_timeout: float

    @property
    def host(self) -> str: ...

    def connect(self, timeout: float) -> RemoteSSH: ...


class Deploy:
    """A deploy mode. `selected_by`: the dest of the option that asks for it (None: the
    default mode)."""

    name: ClassVar[str]
    selected_by: ClassVar[str | None] = None

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> Deploy:
        return cls()

    def dry_run(self, target: Remote, req: UpRequest) -> list[str]:
        """The lines `--dry-run` prints for the deploy (between preflight and the tests)."""
        return []

    def upload_bytes(self, req: UpRequest) -> int:
        """What the deploy puts in the machine's temporary directory (preflight's check)."""
        return 0

    def run(self, target: Remote, sess: Session, req: UpRequest) -> Session:
        """Make the kernel run on the machine; returns the session to it."""
        return sess


@dataclass
class NoDeploy(Deploy):
    """`--no-deploy`: the machine's own kernel (a distro or vendor kernel) is tested."""

    name: ClassVar[str] = "none"
    selected_by: ClassVar[str | None] = "no_deploy"


class NewKernel(Deploy):
    """A mode that boots the kernel orch built: `start` it, then wait for SSH from a new
    boot and check that the kernel there is orch's (its release and its build stamp)."""

    verb: ClassVar[str]  # "{N}s from {verb} to SSH"

    def start(self, target: Remote, sess: Session, req: UpRequest) -> float:
        """Start the new kernel; returns when it started (time.monotonic())."""
        raise NotImplementedError

    def run(self, target: Remote, sess: Session, req: UpRequest) -> Session:
        kernel = req.kernel
        assert kernel is not None
        facts = req.facts
        want = kernel.info().get("release", "")
        boot_id = out(sess, "cat /proc/sys/kernel/random/boot_id")
        started = self.start(target, sess, req)
        sess.close()
        new = self.wait_back(target, boot_id, started, say=req.status)
        new.sudo = sess.sudo
        facts["deploy_seconds"] = round(time.monotonic() - started, 2)
        release = out(new, "uname -r")
        version = out(new, "cat /proc/version")
        facts.update(release=release, kernel_version=version)
        if release != want or f"@{kernel.stamp})" not in version:
            m = re.search(r"\(([^()\s]+@[^()\s]+)\)", version)
            raise InfraError(f"{target.host} runs {release} built by "
                             f"{m.group(1) if m else '?'}, not the kernel orch built "
                             f"({want}, built by orch@{kernel.stamp})", stage="deploy")
        req.progress(f"[{req.arch.name}] {target.host}: running {release} "
                     f"(stamp verified), {facts['deploy_seconds']}s from "
                     f"{self.verb} to SSH")
        return new

    def wait_back(self, target: Remote, old_boot_id: str, started: float,
                  say=None) -> Session:
        """Until the machine answers SSH with a new boot id, within its boot_timeout."""
        deadline = started + target.boot_timeout

        def attempt() -> Session:
            try:
                # Short attempts: while the new kernel boots, the forward (or a NAT, or a
                # switch) may accept the TCP connection and then say nothing at all.
                s = target.connect(min(3.0, max(1.0, deadline - time.monotonic())))
            except HostKeyError:
                raise  # another machine (or userland) answers: waiting cannot help
            except SSHError as exc:
                raise NotBack(str(exc)) from None
            res = s.run("cat /proc/sys/kernel/random/boot_id", timeout=30)
            if res.exit_code == 0 and res.stdout.strip() != old_boot_id:
                return s
            s.close()  # still the old kernel: kexec -e has not happened yet
            raise NotBack("the old kernel still answers")

        try:
            return retrying(f"{target.host}: {self.name}", NotBack, wait=wait_fixed(0.5),
                            stop=stop_after_delay(max(0.0, deadline - time.monotonic())),
                            say=say)(attempt)
        except NotBack as exc:
            raise InfraError(f"the new kernel never came back: no SSH from {target.host} "
                             f"within {target.boot_timeout:.0f}s of {self.name} ({exc})",
                             stage="deploy") from None


class NotBack(Exception):
    """The machine does not answer yet, or its old kernel still does: tried again."""


@dataclass
class Kexec(NewKernel):
    """The default: upload the image, load it with the running kernel's command line (plus
    --append) and `--target-initrd`, and kexec into it."""

    initrd: str | None = None  # --target-initrd: a path on the machine
    name: ClassVar[str] = "kexec"
    verb: ClassVar[str] = "kexec"

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> Kexec:
        return cls(values.get("target_initrd"))

    def _initrd_arg(self) -> str:
        return f" --initrd={shlex.quote(self.initrd)}" if self.initrd else ""

    def dry_run(self, target: Remote, req: UpRequest) -> list[str]:
        return [f"+ {target.address}: upload {req.arch.image_path.split('/')[-1]}; "
                f"kexec -l IMAGE{self._initrd_arg()} --command-line=\"$(cat "
                f"/proc/cmdline) {target.append}\"; kexec -e"]

    def upload_bytes(self, req: UpRequest) -> int:
        return req.kernel.image.stat().st_size if req.kernel is not None else 0

    def start(self, target: Remote, sess: Session, req: UpRequest) -> float:
        kernel = req.kernel
        assert kernel is not None
        self.load(target, sess, req)
        req.progress(f"[{req.arch.name}] {target.host}: kexec into "
                     f"{kernel.info().get('release', '')} (key {kernel.key[:12]})")
        started = time.monotonic()
        sess.run(detached("PATH=$PATH:/sbin:/usr/sbin; sync; if [ -d /run/systemd/system "
                          "]; then systemctl kexec; else kexec -e; fi"), timeout=30)
        return started

    def load(self, target: Remote, sess: Session, req: UpRequest) -> None:
        """`kexec -l` the image; nothing of it stays on the machine's disk."""
        kernel = req.kernel
        assert kernel is not None
        path = "PATH=$PATH:/sbin:/usr/sbin; "
        if sess.run(path + "command -v kexec", timeout=30).exit_code != 0:
            raise InfraError(f"{target.host}: kexec not found (install kexec-tools there)",
                             stage="deploy")
        if self.initrd and sess.run(f"test -r {shlex.quote(self.initrd)}").exit_code != 0:
            raise UsageError(f"--target-initrd {self.initrd}: not found on "
                             f"{target.host}", stage="deploy")
        cmdline = " ".join(w for w in out(sess, "cat /proc/cmdline").split()
                           if not w.startswith(("BOOT_IMAGE=", "initrd=")))
        if target.append:
            cmdline = f"{cmdline} {target.append}".strip()
        tmp = out(sess, 'mktemp -d "${TMPDIR:-/tmp}/orch.XXXXXXXX"', "mktemp -d")
        image = f"{tmp}/{kernel.image.name}"
        try:
            req.status(f"[{req.arch.name}] uploading {kernel.image.name} to {target.host}")
            sess.put(kernel.image, f"cat > {shlex.quote(image)}")
            res = sess.run(f"{path}kexec -l {shlex.quote(image)}{self._initrd_arg()} "
                           f"--command-line={shlex.quote(cmdline)}", timeout=120)
        finally:
            # kexec -l has copied the image into kernel memory: nothing stays on disk.
            sess.run(f"rm -rf {shlex.quote(tmp)}", timeout=60)
        if res.exit_code != 0:
            why = (res.stderr or res.stdout).strip().splitlines()
            raise InfraError(f"{target.host}: kexec refused the kernel: "
                             f"{why[-1] if why else f'exit {res.exit_code}'}", stage="deploy")


@dataclass
class RebootCmd(NewKernel):
    """`--reboot-cmd CMD`: the user's own install-and-reboot script, on this host, with the
    kernel named in its environment. An argv (shlex-split), never a shell."""

    command: str = ""
    name: ClassVar[str] = "reboot-cmd"
    verb: ClassVar[str] = "reboot"
    selected_by: ClassVar[str | None] = "reboot_cmd"

    def __post_init__(self) -> None:
        if not self.command:
            raise UsageError("--reboot-cmd needs a command")

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> RebootCmd:
        return cls(values.get("reboot_cmd") or "")

    def dry_run(self, target: Remote, req: UpRequest) -> list[str]:
        return [f"+ {self.command}   (ORCH_KERNEL=IMAGE ORCH_TARGET={target.host})"]

    def start(self, target: Remote, sess: Session, req: UpRequest) -> float:
        kernel = req.kernel
        assert kernel is not None
        started = time.monotonic()
        env = {"ORCH_KERNEL": str(kernel.image), "ORCH_KERNEL_RELEASE":
               kernel.info().get("release", ""), "ORCH_KERNEL_STAMP": kernel.stamp,
               "ORCH_ARCH": req.arch.name, "ORCH_TARGET": str(target.address),
               "ORCH_TARGET_HOST": target.address.host}
        req.progress(f"[{req.arch.name}] {target.host}: running --reboot-cmd")
        res = req.runner.run(shlex.split(self.command), env=env,
                             timeout=target.boot_timeout)
        if not res.ok:
            last = next((ln for ln in reversed(res.tail) if ln.strip()), "")
            raise InfraError(f"--reboot-cmd failed (exit {res.returncode}): {last.strip()}",
                             stage="deploy")
        return started


DEPLOY: dict[str, type[Deploy]] = {"kexec": Kexec, "reboot-cmd": RebootCmd, "none": NoDeploy}
DEPLOY_MODES = tuple(DEPLOY)


def by_name(name: str, values: Mapping[str, Any] | None = None) -> Deploy:
    """The mode called `name`, with what it reads from the options in `values`."""
    mode = DEPLOY.get(name)
    if mode is None:
        raise UsageError(f"deploy mode {name}: choose {', '.join(DEPLOY)}")
    return mode.from_options(values or {})


def choose(values: Mapping[str, Any]) -> Deploy:
    """The mode the options in `values` ask for: the one whose option is given, else the
    default (kexec). Two given is a usage error."""
    chosen_by = {m.selected_by: m for m in DEPLOY.values() if m.selected_by}
    given = [o for o in OPTIONS if o.dest in chosen_by and values.get(o.dest)]
    if len(given) > 1:
        raise UsageError(f"{given[0].flags[0]} and {given[1].flags[0]}: choose one")
    if given:
        return chosen_by[given[0].dest].from_options(values)
    default = next(m for m in DEPLOY.values() if m.selected_by is None)
    return default.from_options(values)

