"""What a target is: the protocol every target follows (`Target`), what it is given to run
a kernel (`UpRequest`), what it yields once the kernel runs (`Machine`), and what every
target class shares (`TargetBase`): how it is chosen by name, and how it reads the run's
options: its own ones declared once, as `Opt` records in its `OPTIONS`, and the run's
common ones (--append, --boot-timeout...) as dataclass fields made with `setting()`.

The targets themselves are in local.py (QEMU) and remote.py (a machine over SSH); base.py
chooses one by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Protocol

from orchestrator.base.opt import RUN, Opt
from orchestrator.base.runner import Runner
from orchestrator.kernel.arch import Arch
from orchestrator.kernel.build import Kernel
from orchestrator.targets import qemu
from orchestrator.targets.ssh import Session


@dataclass
class UpRequest:
    """What a target is given to run a kernel: from the run's earlier stages."""

    arch: Arch
    kernel: Kernel | None  # None: nothing built (--no-deploy does not need it)
    initrd: Path | None  # only for targets that want one
    tests: list[Path]  # the static selftest binaries on this host
    console: Path  # where a serial console goes, when the target has one
    runner: Runner
    # Test directory trees (name -> host dir: a kselftest install), for the machine's
    # `dirs`: in the initramfs (rootfs.payload_dir) or uploaded.
    payload: dict[str, Path] = field(default_factory=dict)
    progress: Callable[[str], None] = print
    status: Callable[[str], None] = lambda msg: None
    notice: Callable[[str], None] = print  # shown even with --quiet (what was asked for)
    # The run's cell, as labels (arch, tree, series...): a LAVA job carries them as its
    # metadata, so its results read back into the same cell.
    labels: dict[str, str] = field(default_factory=dict)
    # What the target finds out on the way (also when it fails: the deploy time, the
    # kernel that answered): the run records it either way.
    facts: dict[str, object] = field(default_factory=dict)


@dataclass
class Machine:
    """A target that is up: run commands on `session`; test binaries are in `tests_dir`,
    each test payload (UpRequest.payload) in `dirs[name]`.

    A target that runs the tests itself (LAVA) has no session: its `report` is what it
    found (the test stage reads it into the same records)."""

    session: Session | None
    tests_dir: str
    facts: dict[str, object] = field(default_factory=dict)
    guest: qemu.Guest | None = None  # its console tells a kernel crash from a lost machine
    report: Any = None  # the finished run of a target that ran the tests itself
    dirs: dict[str, str] = field(default_factory=dict)


class Target(Protocol):
    kind: str
    wants_initramfs: bool
    remote: bool  # a machine orch does not start: checked before anything slow
    runs_qemu_here: bool
    runs_kselftests: bool
    runs_tests_itself: bool

    def check_host(self) -> None: ...

    def check(self, arch: Arch, runner: Runner) -> None: ...

    def cell(self) -> dict[str, str]: ...

    def properties(self) -> dict[str, str]: ...

    def dry_run(self, req: UpRequest) -> list[str]: ...

    def up(self, req: UpRequest) -> Iterator[Machine]: ...


def setting(default: Any) -> Any:
    """A target's dataclass field that takes the run's option of the same name (dest)."""
    return field(default=default, metadata={"setting": True})


class TargetBase:
    """What every target class shares: how it is chosen by name and reads the run's options.

    SPEC: what `--target` looks like for it, in messages; SHORT: the same, shorter, for
    "--x is for --target SHORT". OPTIONS: the options only this target takes (declared here
    once: orchestrator.options puts them in its table, and base.make refuses them for any
    other target); their values are in `own`, read as attributes by dest
    (`target.known_hosts`)."""

    SPEC: ClassVar[str]
    SHORT: ClassVar[str]
    OPTIONS: ClassVar[tuple[Opt, ...]] = ()
    runs_qemu_here: ClassVar[bool] = False  # QEMU on this host: its binary is needed
    runs_kselftests: ClassVar[bool] = True  # runs the kernel's own kselftests (payloads)
    runs_tests_itself: ClassVar[bool] = False  # runs the tests its own way (a LAVA job)

    def check_host(self) -> None:
        """Refuse (exit 2) what this host lacks for the target, before anything slow."""

    @classmethod
    def matches(cls, spec: str | None) -> bool:
        raise NotImplementedError

    @classmethod
    def build(cls, spec: str | None, values: Mapping[str, Any]) -> Any:
        """The target for `spec`, with what it reads from `values` (option dest -> value);
        values it does not read are ignored."""
        raise NotImplementedError

    @classmethod
    def check_options(cls, values: Mapping[str, Any]) -> None:
        """Refuse a combination of this target's own options, whatever the target."""

    @classmethod
    def settings(cls) -> list[str]:
        """The dests of the run's common options this target reads: its setting() fields."""
        return [f.name for f in fields(cls) if f.metadata.get("setting")]  # type: ignore[arg-type]

    @classmethod
    def reads(cls) -> list[str]:
        """Every option dest the target reads: the run's common ones, then its own."""
        return [*cls.settings(), *(o.dest for o in cls.OPTIONS)]

    @classmethod
    def common(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: values[k] for k in cls.settings() if k in values}

    @classmethod
    def own_values(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every one of this target's own options: from `values`, else its default."""
        return {o.dest: values[o.dest] if o.dest in values else o.parsed_default(RUN)
                for o in cls.OPTIONS}

    def __getattr__(self, name: str) -> Any:
        own = self.__dict__.get("own")
        if own is not None and name in own:
            return own[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
