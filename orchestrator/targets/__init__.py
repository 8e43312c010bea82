"""Where the tests run: targets chosen by name (qemu, ssh://...), QEMU, SSH sessions, the
SSH target's deploy modes, the guest's root filesystem and keys.

base.py: the registry (`select`, `make`) · protocol.py: the target protocol, `UpRequest`,
`Machine` · local.py: `QemuTarget` · remote.py: `SshTarget` · deploy.py: kexec, reboot-cmd,
none · qemu.py: QEMU's argv, the KVM probe, `Guest` · ssh.py: sessions · rootfs.py: the
initramfs · keys.py: SSH keys.
"""

from orchestrator.targets.protocol import Machine, Target, UpRequest
from orchestrator.targets.registry import OPTIONS as TARGET_OPTIONS
from orchestrator.targets.registry import make, select

__all__ = ["TARGET_OPTIONS", "Machine", "Target", "UpRequest", "make", "select"]
