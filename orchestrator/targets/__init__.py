"""Where the tests run: targets chosen by name (qemu, ssh://...), QEMU, SSH sessions, the
guest's root filesystem and keys."""

from orchestrator.targets.base import OPTIONS as TARGET_OPTIONS
from orchestrator.targets.base import make

__all__ = ["TARGET_OPTIONS", "make"]
