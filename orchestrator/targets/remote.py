"""`--target ssh://[user@]host[:port]`: a machine orch did not start, reached over SSH.

The kernel orch built is deployed there by a deploy mode (deploy.py: kexec by default,
`--reboot-cmd`, or none with `--no-deploy`); the test binaries go to a temporary directory,
which is removed afterwards. Its own options are declared once, in `SshTarget.OPTIONS`.
"""

from __future__ import annotations

import re
import shlex
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from orchestrator.base.errors import InfraError, UsageError
from orchestrator.base.opt import RUN, Opt, abs_path
from orchestrator.base.runner import Runner
from orchestrator.kernel import arch as archmod
from orchestrator.kernel.arch import Arch
from orchestrator.targets import deploy as deploymod
from orchestrator.targets.protocol import Machine, TargetBase, UpRequest, setting
from orchestrator.targets.ssh import (
    Address,
    RemoteSSH,
    Session,
    detached,
    out,
    parse_address,
)

SSH_SPEC = re.compile(r"^ssh://")


@dataclass
class SshTarget(TargetBase):
    """A machine orch did not start, reached over SSH. The kernel orch built is deployed
    by kexec (default), by the user's `--reboot-cmd`, or not at all (`--no-deploy`)."""

    address: Address
    deploy: deploymod.Deploy = field(default_factory=deploymod.Kexec)
    own: dict[str, Any] = field(default_factory=dict)  # OPTIONS' values, by dest
    append: str = setting("")
    boot_timeout: float = setting(180.0)  # kexec (or reboot) to SSH back
    ssh_timeout: float = setting(60.0)  # the first connection
    kind = "ssh"
    wants_initramfs = False
    remote = True
    SPEC = "ssh://[user@]host[:port]"
    SHORT = "ssh://..."
    # The ssh target's own options: declared here once; orchestrator.options takes them in.
    OPTIONS = (
        Opt(("--known-hosts",), "known_hosts", "--target ssh: the known_hosts file to check "
            "the machine's host key against (default: ~/.ssh/known_hosts); an unknown key is "
            "never accepted", type=Path, fmt=abs_path, example=Path("/tmp/known_hosts")),
        *deploymod.OPTIONS,
        Opt(("--reboot-after",), "reboot_after", "--target ssh: reboot the machine when done "
            "(back to its own kernel); default: leave it running the tested kernel",
            kind="flag", default=False, commands=(RUN,), example=True),
    )

    def __post_init__(self) -> None:
        self.own = {**self.own_values({}), **self.own}
        if self.known_hosts is not None and not self.known_hosts.is_file():
            raise UsageError(f"--known-hosts {self.known_hosts}: no such file")

    @classmethod
    def matches(cls, spec: str | None) -> bool:
        return spec is not None and bool(SSH_SPEC.match(spec))

    @classmethod
    def build(cls, spec: str | None, values: Mapping[str, Any]) -> SshTarget:
        """`values` may also name the deploy mode (`deploy="none"`) instead of asking for it
        with its option."""
        assert spec is not None
        address = parse_address(spec)
        if "deploy" in values:
            mode = deploymod.by_name(values["deploy"], values)
        else:
            mode = deploymod.choose(values)
        return cls(address, mode, cls.own_values(values), **cls.common(values))

    @classmethod
    def check_options(cls, values: Mapping[str, Any]) -> None:
        deploymod.choose(values)

    @property
    def host(self) -> str:
        port = f":{self.address.port}" if self.address.port else ""
        return f"{self.address.host}{port}"

    def cell(self) -> dict[str, str]:
        return {"kind": "ssh", "host": self.host}

    def properties(self) -> dict[str, str]:
        return {"target": f"ssh://{self.host}", "deploy": self.deploy.name}

    def dry_run(self, req: UpRequest) -> list[str]:
        return [f"+ {self.address}: uname -m; id -u; df",
                *self.deploy.dry_run(self, req),
                f"+ {self.address}: upload selftests to a temporary directory, run"]

    def check(self, arch: Arch, runner: Runner) -> None:
        """Before the build: the machine answers, is `arch`, and we are root (or sudo)."""
        sess = self.connect(self.ssh_timeout)
        try:
            self.preflight(sess, UpRequest(arch, None, None, [], Path("/dev/null"), runner))
        finally:
            sess.close()

    def connect(self, timeout: float) -> RemoteSSH:
        s = RemoteSSH(self.address, self.known_hosts)
        s.connect(timeout)
        return s

    @contextmanager
    def up(self, req: UpRequest) -> Iterator[Machine]:
        a = req.arch
        req.status(f"[{a.name}] connecting to {self.address}")
        facts = req.facts
        facts.update(host=self.host, deploy=self.deploy.name)
        sess: Session = self.connect(self.ssh_timeout)
        tmp = ""
        try:
            self.preflight(sess, req)
            sess = self.deploy.run(self, sess, req)
            facts["release"] = out(sess, "uname -r")
            facts["kernel_version"] = out(sess, "cat /proc/version")
            tmp = out(sess, 'mktemp -d "${TMPDIR:-/tmp}/orch.XXXXXXXX"', "mktemp -d")
            for t in req.tests:
                req.status(f"[{a.name}] uploading {t.name}")
                sess.put(t, f"cat > {shlex.quote(f'{tmp}/{t.name}')} && "
                            f"chmod 755 {shlex.quote(f'{tmp}/{t.name}')}")
            dirs = {}
            for name, directory in req.payload.items():
                req.status(f"[{a.name}] uploading {name}")
                dirs[name] = f"{tmp}/{name}"
                _upload_tree(sess, directory, dirs[name])
            yield Machine(sess, tmp, facts, dirs=dirs)
        finally:
            if sess.conn is not None:  # not when the deployed kernel never came back
                if tmp:  # a test still running there (orch was interrupted) goes too
                    sess.run(f"{_kill_running_from(tmp)}; rm -rf {shlex.quote(tmp)}",
                             timeout=60)
                if self.reboot_after:
                    req.progress(f"[{a.name}] rebooting {self.host} (--reboot-after)")
                    sess.run(detached("if [ -d /run/systemd/system ]; then systemctl "
                                      "reboot; else reboot; fi"), timeout=30)
            sess.close()

    def preflight(self, sess: Session, req: UpRequest) -> None:
        """The machine is the arch we built for, we are root (or sudo), there is room."""
        machine = out(sess, "uname -m")
        got = archmod.ALIASES.get(machine, machine)
        if got != req.arch.name:
            raise InfraError(f"{self.host} is {machine}, not {req.arch.name} "
                             f"(--arch {got}?)", stage="preflight")
        if out(sess, "id -u") != "0":
            if sess.run("sudo -n true", timeout=30).exit_code != 0:
                raise InfraError(f"{self.host}: orch needs root or passwordless sudo "
                                 f"(logged in as {out(sess, 'id -un')})", stage="preflight")
            sess.sudo = True
        need = sum(t.stat().st_size for t in req.tests) + self.deploy.upload_bytes(req) + \
            sum(f.stat().st_size for d in req.payload.values() for f in d.rglob("*")
                if f.is_file())
        free_kb = out(sess, 'df -Pk "${TMPDIR:-/tmp}" | awk \'NR==2{print $4}\'')
        if free_kb.isdigit() and int(free_kb) * 1024 < need + (8 << 20):
            raise InfraError(f"{self.host}: {int(free_kb) // 1024} MiB free in its temporary "
                             f"directory, {need // (1 << 20) + 8} MiB needed",
                             stage="preflight")


def _upload_tree(sess: Session, directory: Path, dest: str) -> None:
    """A directory tree to `dest` on the machine, as one tar stream (busybox has tar)."""
    with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
        with tarfile.open(tmp.name, "w") as tar:
            tar.add(directory, arcname=".")
        sess.put(Path(tmp.name), f"mkdir -p {shlex.quote(dest)} && "
                                 f"tar -x -f - -C {shlex.quote(dest)}")


def _kill_running_from(path: str) -> str:
    """Shell that SIGKILLs every process whose command line names `path`/ (a test, and the
    `timeout` watching it), except the shell itself and its parent (sudo). No pkill: a
    busybox board may not have it; and busybox grep stops at a NUL, hence the tr."""
    pat = shlex.quote(path.rstrip("/") + "/")
    return (f'for d in /proc/[0-9]*; do p=${{d#/proc/}}; [ "$p" = "$$" ] || '
            f'[ "$p" = "$PPID" ] || ! tr "\\0" " " < "$d/cmdline" 2>/dev/null | '
            f'grep -qF {pat} || kill -9 "$p" 2>/dev/null; done')
