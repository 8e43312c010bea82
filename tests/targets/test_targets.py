"""Targets as records: selection, addresses, and the SSH target's decisions against a fake
session (the real thing is in test_target_slow.py: a QEMU board, kexec, dropbear)."""

import pytest

from orchestrator.base.errors import EXIT_INFRA, EXIT_USAGE, InfraError, UsageError
from orchestrator.targets import registry as targets
from orchestrator.targets.ssh import Address, CmdResult, parse_address
from tests.support.fakes import FakeSession
from tests.targets.conftest import up_request


def test_select_by_name():
    q = targets.select(None, accel="tcg", known_hosts=None, boot_timeout=5)
    assert isinstance(q, targets.QemuTarget) and q.wants_initramfs and q.accel == "tcg"
    assert q.boot_timeout == 5 and q.cell() == {"kind": "qemu"}
    s = targets.select("ssh://root@board.lab:2222", accel="tcg", deploy="none")
    assert isinstance(s, targets.SshTarget) and not s.wants_initramfs
    assert s.address == Address("board.lab", "root", 2222)
    assert s.cell() == {"kind": "ssh", "host": "board.lab:2222"}
    assert s.properties()["target"] == "ssh://board.lab:2222"
    with pytest.raises(UsageError, match="expected qemu or ssh://"):
        targets.select("lava://x")


@pytest.mark.parametrize("spec,addr", [
    ("ssh://board", Address("board")),
    ("ssh://me@10.0.0.2", Address("10.0.0.2", "me")),
    ("ssh://root@127.0.0.1:10022", Address("127.0.0.1", "root", 10022)),
])
def test_parse_address(spec, addr):
    assert parse_address(spec) == addr
    assert str(addr) == spec


@pytest.mark.parametrize("spec", ["board", "ssh://", "ssh://h/path", "ssh://u:pw@h",
                                  "ssh://h:port"])
def test_bad_addresses_are_usage_errors(spec):
    with pytest.raises(UsageError) as e:
        parse_address(spec)
    assert e.value.exit_code == EXIT_USAGE


def test_known_hosts_file_must_exist(tmp_path):
    with pytest.raises(UsageError, match="--known-hosts"):
        targets.select("ssh://h", known_hosts=tmp_path / "nope")
    with pytest.raises(UsageError, match="--reboot-cmd"):
        targets.select("ssh://h", deploy="reboot-cmd")


def _req(tmp_path):
    return up_request(tmp_path)


def test_preflight_wrong_arch_is_infra(tmp_path):
    t = targets.select("ssh://h")
    s = FakeSession([("uname -m", "aarch64")])
    with pytest.raises(InfraError) as e:
        t.preflight(s, _req(tmp_path))
    assert e.value.exit_code == EXIT_INFRA
    assert "h is aarch64, not x86_64" in str(e.value)


def test_preflight_needs_root_or_sudo(tmp_path):
    t = targets.select("ssh://h")
    s = FakeSession([("uname -m", "x86_64"), ("id -un", "me"), ("id -u", "1000"),
                     ("sudo -n true", CmdResult(1, "", "a password is required", 0.0))])
    with pytest.raises(InfraError, match="root or passwordless sudo"):
        t.preflight(s, _req(tmp_path))
    s = FakeSession([("uname -m", "x86_64"), ("id -u", "1000"), ("df -Pk", "999999")])
    t.preflight(s, _req(tmp_path))
    assert s.sudo  # every later command goes through sudo -n


def test_preflight_space(tmp_path):
    t = targets.select("ssh://h")
    s = FakeSession([("uname -m", "x86_64"), ("id -u", "0"), ("df -Pk", "100")])
    with pytest.raises(InfraError, match="MiB free"):
        t.preflight(s, _req(tmp_path))


def test_kexec_load_keeps_cmdline_appends_and_cleans_up(tmp_path):
    t = targets.select("ssh://h", target_initrd="/boot/initrd.cpio", append="quiet")
    s = FakeSession([("command -v kexec", "/sbin/kexec"),
                     ("cat /proc/cmdline", "BOOT_IMAGE=/vmlinuz console=ttyS0 root=/dev/sda"),
                     ("mktemp -d", "/tmp/orch.X")])
    t.deploy.load(t, s, _req(tmp_path))
    load = next(c for c in s.ran if "kexec -l" in c)
    assert "kexec -l /tmp/orch.X/bzImage --initrd=/boot/initrd.cpio" in load
    assert "--command-line='console=ttyS0 root=/dev/sda quiet'" in load
    assert s.uploads == [("bzImage", "cat > /tmp/orch.X/bzImage")]
    assert s.ran[-1] == "rm -rf /tmp/orch.X"  # the image does not stay on the machine


def test_kexec_refused_is_infra_and_cleans_up(tmp_path):
    t = targets.select("ssh://h")
    s = FakeSession([("command -v kexec", "/sbin/kexec"), ("mktemp -d", "/tmp/orch.Y"),
                     ("kexec -l", CmdResult(255, "", "Cannot load /tmp/orch.Y/bzImage", 0.0))])
    with pytest.raises(InfraError, match="kexec refused the kernel: Cannot load") as e:
        t.deploy.load(t, s, _req(tmp_path))
    assert e.value.exit_code == EXIT_INFRA
    assert s.ran[-1] == "rm -rf /tmp/orch.Y"
    assert not any("kexec -e" in c for c in s.ran)  # the running kernel is left alone


def test_missing_target_initrd_is_usage(tmp_path):
    t = targets.select("ssh://h", target_initrd="/nope")
    s = FakeSession([("command -v kexec", "/sbin/kexec"),
                     ("test -r", CmdResult(1, "", "", 0.0))])
    with pytest.raises(UsageError, match="--target-initrd /nope: not found on h"):
        t.deploy.load(t, s, _req(tmp_path))


def test_ssh_dry_run_names_the_deploy(tmp_path):
    t = targets.select("ssh://root@h:2", target_initrd="/boot/i")
    plan = "\n".join(t.dry_run(_req(tmp_path)))
    assert "kexec -l IMAGE --initrd=/boot/i" in plan and "kexec -e" in plan
    plan = "\n".join(targets.select("ssh://h", deploy="none").dry_run(_req(tmp_path)))
    assert "kexec" not in plan
