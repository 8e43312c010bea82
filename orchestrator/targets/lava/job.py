"""LAVA job definitions and device dictionaries for orch's kernel, initramfs and selftests.

Pure functions (data in, YAML text out), golden-tested. The device dictionary for a local
`lava-run` comes from tuxlava (`QemuX86_64().device_dict(context)`, the one LKFT's tuxrun
uses). The job definition is written here: tuxlava's qemu job template puts its own kernel
command line (`console_msg_format=syslog`, `earlycon`...) and its own test definitions
(downloaded kselftest tarballs, dispatcher-side parsing) in every job, and orch's job needs
neither: its kernel command line is orch's (qemu.cmdline), and its test is the script
already in the initramfs (lavaguest.py), which reports each case from inside the guest.

A job is:
- deploy `to: tmpfs`: the kernel (with orch's command line plus `orch.lava=1`) and the
  initramfs as a `cpio.newc` rootfs with LAVA's overlay (which brings `lava-test-case`);
- boot `method: qemu`, `auto_login` at `login:`, orch's fixed prompt;
- test: one inline definition running `lavaguest.TEST_SCRIPT_PATH` over the binaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import yaml

from orchestrator.kernel.arch import Arch
from orchestrator.targets import qemu
from orchestrator.targets.lava import guest as lavaguest
from orchestrator.targets.layout import TESTS_DIR

DEVICE_TYPES = ("qemu",)  # what the local dispatcher can run (a device dictionary here)
DEFINITION = "orch"  # the test definition's name: LAVA's suite is "1_orch"
CMDLINE_SWITCH = "orch.lava=1"


@dataclass
class JobSpec:
    """What one job runs: an arch, artifact URLs, the test binaries and the limits."""

    arch: Arch
    kernel_url: str
    initrd_url: str
    tests: list[str]
    name: str = "orch"
    memory: str = "1G"
    smp: int = 2
    append: str = ""
    test_timeout: float = 300.0  # per binary (the guest's `timeout -s KILL`)
    boot_timeout: float = 180.0
    device_type: str = "qemu"
    local: bool = True  # lava-run on this host (a server refuses `no_network`)
    tags: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # the cell: the job's metadata

    def context(self) -> dict:
        """The job's `context`: the QEMU details the qemu device type reads."""
        ctx: dict = {"arch": self.arch.name, "machine": self.arch.machine,
                     "cpu": self.arch.cpu, "memory": self.memory,
                     "extra_options": [f"-smp {self.smp}", "-no-reboot",
                                       "-accel tcg,thread=multi"],
                     "no_kvm": True}
        if self.local:
            ctx["no_network"] = True
        return ctx


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def job(spec: JobSpec) -> dict:
    """The job definition as data."""
    cmdline = qemu.cmdline(spec.arch, " ".join(p for p in (spec.append, CMDLINE_SWITCH) if p))
    run = f"{lavaguest.TEST_SCRIPT_PATH} {TESTS_DIR} {int(spec.test_timeout)} " + \
        " ".join(spec.tests)
    tests_minutes = _minutes(spec.test_timeout * max(1, len(spec.tests)) + 60)
    boot_minutes = _minutes(spec.boot_timeout)
    definition = {
        "device_type": spec.device_type,
        "job_name": spec.name,
        "priority": "medium",
        "visibility": "public",
        "timeouts": {"job": {"minutes": 5 + boot_minutes + tests_minutes},
                     "action": {"minutes": 5},
                     "actions": {"power-off": {"seconds": 30}}},
        "context": spec.context(),
        "actions": [
            {"deploy": {
                "to": "tmpfs", "timeout": {"minutes": 5}, "os": "oe",
                "images": {
                    "kernel": {"image_arg": f'-kernel {{kernel}} -append "{cmdline}"',
                               "url": spec.kernel_url},
                    "rootfs": {"image_arg": "-initrd {rootfs}", "url": spec.initrd_url,
                               "format": "cpio.newc", "overlays": {"lava": True}},
                }}},
            {"boot": {
                "method": "qemu", "timeout": {"minutes": boot_minutes},
                "auto_login": {"login_prompt": lavaguest.LOGIN_PROMPT, "username": "root"},
                "prompts": [lavaguest.PROMPT]}},
            {"test": {
                "timeout": {"minutes": tests_minutes},
                "definitions": [{
                    "from": "inline", "name": DEFINITION, "path": f"inline/{DEFINITION}.yaml",
                    "repository": {
                        "metadata": {"format": "Lava-Test Test Definition 1.0",
                                     "name": DEFINITION,
                                     "description": "orch's selftests, reported per KTAP "
                                                    "test from inside the guest"},
                        "run": {"steps": [run]}}}]}},
        ],
    }
    if spec.tags:
        definition["tags"] = list(spec.tags)
    if spec.labels:
        definition["metadata"] = {f"orch.{k}": str(v) for k, v in spec.labels.items()}
    return definition


def job_yaml(spec: JobSpec) -> str:
    """The job definition as YAML, in a stable order (golden-tested)."""
    return yaml.safe_dump(job(spec), sort_keys=False, default_flow_style=False, width=100)


def device_dict(spec: JobSpec) -> str:
    """The device dictionary for a local `lava-run` of `spec`, rendered by tuxlava."""
    from tuxlava.devices.qemu import QemuArm64, QemuX86_64  # noqa: PLC0415 - jinja2 on use

    device = {"x86_64": QemuX86_64, "arm64": QemuArm64}[spec.arch.name]()
    return device.device_dict(spec.context())


DISPATCHER = "# orch: lava-run's dispatcher configuration (defaults)\n{}\n"
