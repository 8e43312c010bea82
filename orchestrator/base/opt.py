"""A command-line option as a record (`Opt`), and the value checks options share.

The records are collected into one table (orchestrator.options), which builds the argparse
parsers and writes an option set back as a command line. A part of orch that owns an option
(a target's own settings, say) declares its `Opt` where it lives; nothing else repeats it.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

# Linux's COMMAND_LINE_SIZE is 2048 on x86_64 and arm64; orch's own part is under 100.
MAX_APPEND = 1900
MIN_MEMORY_MIB = 128

RUN, BISECT, BOOT = "run", "bisect", "boot"
ALL = (RUN, BISECT, BOOT)


@dataclass(frozen=True)
class Opt:
    """One command-line option.

    kind: "value" (takes one value), "append" (repeatable, a list), "flag" (store_true),
    "const" (a flag that appends `const` to the list `dest`, shared by several flags),
    "optional" (a flag with an optional `=VALUE`: None when absent, `const` when bare).
    step: passed to a commit-bisection step (`orch run --in-worktree`); False for the
    bisection's own options and for those the step sets itself (-o, -q, --series).
    reproduce: part of metadata.json's `reproduce` command (False for where output goes).
    example: a non-default value, used by the tests that check the table round-trips.
    """

    flags: tuple[str, ...]
    dest: str
    help: str
    kind: str = "value"
    type: Callable[[str], Any] | None = None
    default: Any = None  # or a dict: command -> default
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    const: Any = None
    commands: tuple[str, ...] = ALL
    fmt: Callable[[Any], str] = str
    step: bool = True
    reproduce: bool = True
    hidden: bool = False
    example: Any = None

    def default_for(self, cmd: str):
        if isinstance(self.default, dict):
            return self.default.get(cmd)
        return self.default

    def parsed_default(self, cmd: str):
        d = self.default_for(cmd)
        if isinstance(d, str) and self.type is not None:
            return self.type(d)
        return d

    def tokens(self, value) -> list[str]:
        """The command-line words for `value` (empty when there is nothing to say)."""
        flag = self.flags[0]
        if self.kind == "flag":
            return [flag] if value else []
        if self.kind == "const":
            return [flag] if value and self.const in value else []
        if value is None:
            return []
        if self.kind == "optional":
            return [flag] if value == self.const else [f"{flag}={self.fmt(value)}"]
        if self.kind == "append":
            return [w for v in value for w in (flag, self.fmt(v))]
        return [flag, self.fmt(value)]


# --- value checks (argparse turns ArgumentTypeError into a usage error naming the option)

def number(value: str, kind=float):
    try:
        x = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number") from None
    if isinstance(x, float) and not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"'{value}' is not a finite number")
    return x


def seconds(value: str) -> float:
    x = number(value)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"'{value}': needs a number of seconds above 0")
    return x


def seconds_or_zero(value: str) -> float:
    """Seconds where 0 means "none" (`orch fuzz --shrink-time 0`: no shrinking)."""
    x = number(value)
    if x < 0:
        raise argparse.ArgumentTypeError(f"'{value}': needs a number of seconds, 0 or above")
    return x


def test_seconds(value: str) -> float:
    x = number(value)
    if x < 1:  # the guest's timeout(1) gets whole seconds; 0 would mean "no timeout"
        raise argparse.ArgumentTypeError(f"'{value}': needs at least 1 second")
    return x


def positive_int(value: str) -> int:
    x = number(value, int)
    if x < 1:
        raise argparse.ArgumentTypeError(f"'{value}': needs a whole number of at least 1")
    return x


def count(value: str) -> int:
    x = number(value, int)
    if x < 0:
        raise argparse.ArgumentTypeError(f"'{value}': needs a whole number of at least 0")
    return x


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$", re.I)
_UNIT_MIB = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def memory_mib(value: str) -> float:
    """QEMU's -m syntax: a number of MiB, or with a K/M/G/T suffix."""
    m = _SIZE_RE.match(value.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"'{value}' is not a size (examples: 1G, 512M)")
    return float(m.group(1)) * _UNIT_MIB[m.group(2).upper()]


def size(value: str) -> str:
    memory_mib(value)
    return value.strip()


def host_memory_mib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory(value: str) -> str:
    mib = memory_mib(value)
    if mib < MIN_MEMORY_MIB:
        raise argparse.ArgumentTypeError(f"'{value}': a guest needs at least "
                                         f"{MIN_MEMORY_MIB}M to boot orch's initramfs")
    host = host_memory_mib()
    if host and mib > host:
        raise argparse.ArgumentTypeError(f"'{value}': more than this host's "
                                         f"{host / 1024:.1f}G of memory")
    return value.strip()


def kernel_append(value: str) -> str:
    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7f), None)
    if bad is not None:
        raise argparse.ArgumentTypeError(f"control character {bad!r} in the kernel command "
                                         f"line")
    if len(value) > MAX_APPEND:
        raise argparse.ArgumentTypeError(f"{len(value)} characters: the kernel command line "
                                         f"holds at most {MAX_APPEND} extra")
    return value




def abs_path(v) -> str:
    return str(Path(v).expanduser().resolve())
