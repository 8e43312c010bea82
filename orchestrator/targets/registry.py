"""Where the tests run. A target is a record chosen by name (`--target qemu`, the default,
`--target ssh://[user@]host[:port]`, or `--target lava[+https://HOST]`), in the manner of
tuxlava's `Device.select`:

- `wants_initramfs`: whether the run builds a root filesystem for it (QEMU boots orch's
  initramfs; a machine over SSH has its own userland, so that stage does not exist for it);
- `up(request)`: a context manager that makes the kernel run there (boot it, or deploy it)
  and yields a `Machine`: a session that runs commands and takes uploads, where the test
  binaries are, and the facts that go into the results (accelerator, host, deploy time);
  or, for a target that runs the tests itself (LAVA), a Machine whose `report` holds them;
- `cell()` and `properties()`: what identifies the target in results and JUnit.

This module is the registry (`TARGETS`, `select`, `make`) and the package's front: the
protocol and its records are in protocol.py, the targets in local.py (QEMU), remote.py
(SSH) and lava.py (LAVA), the SSH target's deploy modes in deploy.py. Adding a target is one
class with its `OPTIONS` and one entry in `TARGETS`.
"""

from __future__ import annotations

from typing import Any

from orchestrator.base.errors import UsageError
from orchestrator.base.opt import Opt
from orchestrator.targets.deploy import DEPLOY, DEPLOY_MODES
from orchestrator.targets.lava.target import LavaTarget
from orchestrator.targets.local import QemuTarget
from orchestrator.targets.protocol import Machine, Target, TargetBase, UpRequest
from orchestrator.targets.remote import SSH_SPEC, SshTarget

TARGETS: tuple[type[TargetBase], ...] = (QemuTarget, SshTarget, LavaTarget)

# Every target's own options, in order (a target may share one with another: once here).
OPTIONS: list[Opt] = list({o.dest: o for t in TARGETS for o in t.OPTIONS}.values())


def owners(dest: str) -> list[type[TargetBase]]:
    """The targets that take the option `dest` as their own."""
    return [t for t in TARGETS if any(o.dest == dest for o in t.OPTIONS)]


def select(spec: str | None, **values: Any) -> Target:
    """`qemu` (default) or `ssh://[user@]host[:port]`; `values`: the run's options by dest
    (each target takes those it reads and ignores the rest)."""
    for t in TARGETS:
        if t.matches(spec):
            return t.build(spec, values)
    raise UsageError(f"--target {spec}: expected {' or '.join(t.SPEC for t in TARGETS)}")


def make(opts) -> Target:
    """The target a run's options (orchestrator.options.Options) ask for, validated: a
    target's own option given for another target is a usage error."""
    values = {dest: getattr(opts, dest) for t in TARGETS for dest in t.reads()}
    for t in TARGETS:
        t.check_options(values)
    target = select(opts.target, **values)
    owned = {o.dest for o in type(target).OPTIONS}
    foreign = [o for o in OPTIONS if values[o.dest] and o.dest not in owned]
    if foreign:
        raise UsageError(f"{foreign[0].flags[0]} is for --target "
                         f"{owners(foreign[0].dest)[0].SHORT}")
    if target.remote and len(opts.arches) != 1:
        raise UsageError(f"--target {opts.target}: one machine is one arch; give one --arch")
    return target


__all__ = ["DEPLOY", "DEPLOY_MODES", "OPTIONS", "SSH_SPEC", "TARGETS", "LavaTarget", "Machine",
           "QemuTarget",
           "SshTarget", "Target", "UpRequest", "make", "owners", "select"]
