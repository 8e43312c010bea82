"""QEMU's command line per arch and accelerator, and QEMU's own error line when it dies."""

from pathlib import Path

from orchestrator.kernel import arch
from orchestrator.targets import qemu


def test_qemu_argv_x86_tcg_binds_loopback_only():
    spec = qemu.BootSpec(Path("/k/bzImage"), Path("/k/initrd"), 10022, "tcg")
    argv = qemu.qemu_argv(arch.X86_64, spec)
    assert argv[0] == "qemu-system-x86_64"
    assert "hostfwd=tcp:127.0.0.1:10022-:22" in argv[argv.index("-netdev") + 1]
    assert argv[argv.index("-accel") + 1].startswith("tcg")
    assert argv[argv.index("-cpu") + 1] == "max"
    assert "console=ttyS0" in argv[argv.index("-append") + 1]
    assert "-no-reboot" in argv and "-nodefaults" in argv


def test_qemu_argv_x86_kvm_uses_host_cpu():
    spec = qemu.BootSpec(Path("k"), None, None, "kvm")
    argv = qemu.qemu_argv(arch.X86_64, spec)
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert argv[argv.index("-cpu") + 1] == "host"
    assert "-initrd" not in argv and "none" in argv[argv.index("-nic") + 1]


def test_qemu_argv_arm64():
    spec = qemu.BootSpec(Path("Image"), Path("i"), 2222, "tcg", memory="2G", smp=4,
                         append="orch.sshd=0")
    argv = qemu.qemu_argv(arch.ARM64, spec)
    assert argv[0] == "qemu-system-aarch64"
    assert argv[argv.index("-M") + 1] == "virt"
    assert argv[argv.index("-cpu") + 1].startswith("max")
    assert argv[argv.index("-m") + 1] == "2G"
    assert argv[argv.index("-smp") + 1] == "4"
    app = argv[argv.index("-append") + 1]
    assert "console=ttyAMA0" in app and app.endswith("orch.sshd=0")


def test_qemu_error_line_is_qemus_own_not_its_help_text():
    lines = ["qemu-system-x86_64: -m lots: Parameter 'size' expects a non-negative number "
             "below 2^64", "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
             "tera-, peta-", "and exabytes, respectively."]
    assert qemu.qemu_error_line(lines) == lines[0]
    assert qemu.qemu_error_line(["# qemu-system-x86_64 -m 1G", "", "last words"]) == \
        "last words"
    assert qemu.exit_status(-9) == "was killed by SIGKILL"
    assert qemu.exit_status(1) == "exited with status 1"
