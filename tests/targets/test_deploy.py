"""Deploy modes (orchestrator.targets.deploy): chosen by name or by the ssh target's
options, each with its dry-run text and its deploy, against fake sessions (the real kexec
and --reboot-cmd are in tests/slow/test_target_slow.py)."""

from dataclasses import dataclass, field

import pytest

from orchestrator.base.errors import (
    EXIT_INFRA,
    EXIT_USAGE,
    HostKeyError,
    InfraError,
    SSHError,
    UsageError,
)
from orchestrator.base.runner import Result
from orchestrator.targets import deploy
from orchestrator.targets.ssh import Address
from tests.support.fakes import FakeSession
from tests.targets.conftest import up_request

STAMP = "orch-abc123"  # the fake kernel's (key abc123) build stamp


@dataclass
class FakeRemote:
    """The parts of the ssh target a deploy mode uses; connect() hands out `machines`."""

    address: Address = Address("h", "root", 2222)
    append: str = ""
    boot_timeout: float = 5.0
    machines: list = field(default_factory=list)
    connects: int = 0

    @property
    def host(self) -> str:
        return "h:2222"

    def connect(self, timeout):
        self.connects += 1
        return self.machines.pop(0)


def back(release="6.1.99", builder=f"orch@{STAMP}"):
    """The machine once the new kernel has come back."""
    return FakeSession([("boot_id", "new"), ("uname -r", release),
                        ("/proc/version", f"Linux version {release} ({builder}) #1")])


@pytest.mark.parametrize("name,initrd,lines", [
    ("kexec", None, ["+ ssh://root@h:2222: upload bzImage; kexec -l IMAGE "
                     "--command-line=\"$(cat /proc/cmdline) quiet\"; kexec -e"]),
    ("kexec", "/boot/i x", ["+ ssh://root@h:2222: upload bzImage; kexec -l IMAGE "
                            "--initrd='/boot/i x' --command-line=\"$(cat /proc/cmdline) "
                            "quiet\"; kexec -e"]),
    ("reboot-cmd", None, ["+ lab-deploy board   (ORCH_KERNEL=IMAGE ORCH_TARGET=h:2222)"]),
    ("none", None, []),
])
def test_dry_run_text_per_mode(req, name, initrd, lines):
    mode = deploy.by_name(name, {"target_initrd": initrd, "reboot_cmd": "lab-deploy board"})
    assert mode.name == name
    assert mode.dry_run(FakeRemote(append="quiet"), req) == lines


def test_unknown_mode_is_a_one_line_usage_error():
    with pytest.raises(UsageError) as e:
        deploy.by_name("floppy")
    assert str(e.value) == "deploy mode floppy: choose kexec, reboot-cmd, none"
    assert e.value.exit_code == EXIT_USAGE


def test_reboot_cmd_needs_a_command():
    with pytest.raises(UsageError, match="^--reboot-cmd needs a command$"):
        deploy.by_name("reboot-cmd", {})


@pytest.mark.parametrize("values,mode", [
    ({}, deploy.Kexec(None)),
    ({"target_initrd": "/boot/i"}, deploy.Kexec("/boot/i")),
    ({"no_deploy": True, "target_initrd": "/boot/i"}, deploy.NoDeploy()),
    ({"reboot_cmd": "x y"}, deploy.RebootCmd("x y")),
    ({"reboot_cmd": "", "no_deploy": False}, deploy.Kexec(None)),  # an empty command: kexec
])
def test_chosen_by_the_options(values, mode):
    assert deploy.choose(values) == mode


def test_two_modes_asked_for_is_a_usage_error():
    with pytest.raises(UsageError) as e:
        deploy.choose({"no_deploy": True, "reboot_cmd": "x"})
    assert str(e.value) == "--no-deploy and --reboot-cmd: choose one"


def test_registry_is_the_one_place_a_mode_is_named():
    assert deploy.DEPLOY_MODES == ("kexec", "reboot-cmd", "none")
    assert all(cls.name == name for name, cls in deploy.DEPLOY.items())
    # exactly one default; every other mode is asked for by one of the deploy options
    assert [c for c in deploy.DEPLOY.values() if c.selected_by is None] == [deploy.Kexec]
    dests = {o.dest for o in deploy.OPTIONS}
    assert all(c.selected_by in dests for c in deploy.DEPLOY.values() if c.selected_by)


def test_only_kexec_uploads_the_kernel(req):
    size = req.kernel.image.stat().st_size
    assert deploy.Kexec().upload_bytes(req) == size
    assert deploy.RebootCmd("x").upload_bytes(req) == 0
    assert deploy.NoDeploy().upload_bytes(req) == 0


def test_no_deploy_keeps_the_session(req):
    sess = FakeSession()
    assert deploy.NoDeploy().run(FakeRemote(), sess, req) is sess
    assert sess.ran == [] and req.facts == {}


def test_kexec_deploys_and_verifies_the_stamp(tmp_path):
    lines = []
    req = up_request(tmp_path, progress=lines.append)
    old = FakeSession([("boot_id", "old"), ("command -v kexec", "/sbin/kexec"),
                       ("cat /proc/cmdline", "BOOT_IMAGE=/v console=ttyS0"),
                       ("mktemp -d", "/tmp/orch.X")])
    old.sudo = True
    new = back()
    remote = FakeRemote(machines=[FakeSession([("boot_id", "old")]), new])
    got = deploy.Kexec().run(remote, old, req)
    assert got is new and new.sudo  # sudo carries over to the new kernel's session
    assert remote.connects == 2  # the old kernel answered once more, then the new one
    assert any("kexec -l /tmp/orch.X/bzImage --command-line=console=ttyS0" in c
               for c in old.ran)
    assert any("systemctl kexec; else kexec -e" in c for c in old.ran)
    assert req.facts["release"] == "6.1.99" and req.facts["deploy_seconds"] >= 0
    assert lines[0] == "[x86_64] h:2222: kexec into 6.1.99 (key abc123)"
    assert lines[-1].startswith("[x86_64] h:2222: running 6.1.99 (stamp verified), ")
    assert lines[-1].endswith("s from kexec to SSH")


def test_another_kernel_answering_is_infra(req):
    remote = FakeRemote(machines=[back(builder="someone@elsewhere")])
    with pytest.raises(InfraError) as e:
        deploy.RebootCmd("true").run(remote, FakeSession([("boot_id", "old")]), req)
    assert str(e.value) == ("h:2222 runs 6.1.99 built by someone@elsewhere, not the kernel "
                            "orch built (6.1.99, built by orch@orch-abc123)")
    assert e.value.exit_code == EXIT_INFRA and e.value.stage == "deploy"


def test_never_back_names_the_mode(req, monkeypatch):
    monkeypatch.setattr(deploy.time, "sleep", lambda s: None)
    remote = FakeRemote(boot_timeout=0.05)
    remote.connect = lambda timeout: FakeSession([("boot_id", "old")])
    with pytest.raises(InfraError, match=r"^the new kernel never came back: no SSH from "
                       r"h:2222 within 0s of reboot-cmd \(the old kernel still answers\)$"):
        deploy.RebootCmd("true").run(remote, FakeSession([("boot_id", "old")]), req)


class FakeRunner:
    def __init__(self, result):
        self.result = result
        self.calls = []

    def run(self, argv, *, env=None, timeout=None):
        self.calls.append((argv, env, timeout))
        return self.result


def test_reboot_cmd_runs_the_users_argv_with_the_kernel_named(tmp_path):
    runner = FakeRunner(Result(["x"], 0, "", 0.1))
    req = up_request(tmp_path, runner=runner)
    deploy.RebootCmd("lab-deploy 'board 1'").start(FakeRemote(), FakeSession(), req)
    [(argv, env, timeout)] = runner.calls
    assert argv == ["lab-deploy", "board 1"] and timeout == 5.0
    assert env == {"ORCH_KERNEL": str(req.kernel.image), "ORCH_KERNEL_RELEASE": "6.1.99",
                   "ORCH_KERNEL_STAMP": STAMP, "ORCH_ARCH": "x86_64",
                   "ORCH_TARGET": "ssh://root@h:2222", "ORCH_TARGET_HOST": "h"}


def test_reboot_cmd_failing_is_infra(tmp_path):
    runner = FakeRunner(Result(["x"], 4, "", 0.1, tail=["working", "no board 1", ""]))
    req = up_request(tmp_path, runner=runner)
    with pytest.raises(InfraError, match=r"^--reboot-cmd failed \(exit 4\): no board 1$"):
        deploy.RebootCmd("lab-deploy").start(FakeRemote(), FakeSession(), req)


def _raises(exc):
    def connect(timeout):
        raise exc
    return connect


def test_waiting_for_the_new_kernel_goes_on_through_any_unreachable(req, monkeypatch):
    """Seen failing before: the wait stopped on any SSHError whose text said "host key"
    (here paramiko's IncompatiblePeer, from a machine still coming up)."""
    monkeypatch.setattr(deploy.time, "sleep", lambda s: None)
    answers = [SSHError("machine unreachable over SSH on h:2222 after 3s (IncompatiblePeer: "
                        "Incompatible ssh peer (no acceptable host key))"),
               SSHError("machine unreachable over SSH on h:2222 after 3s (refused)"), back()]

    def connect(timeout):
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    remote = FakeRemote()
    remote.connect = connect
    got = deploy.RebootCmd("true").run(remote, FakeSession([("boot_id", "old")]), req)
    assert got.ran and answers == []


def test_waiting_for_the_new_kernel_stops_on_another_host_key(req, monkeypatch):
    monkeypatch.setattr(deploy.time, "sleep", lambda s: None)
    calls = []
    remote = FakeRemote()

    def connect(timeout):
        calls.append(timeout)
        raise HostKeyError("host key of h:2222 does not match the known key")

    remote.connect = connect
    with pytest.raises(HostKeyError):
        deploy.RebootCmd("true").run(remote, FakeSession([("boot_id", "old")]), req)
    assert len(calls) == 1
