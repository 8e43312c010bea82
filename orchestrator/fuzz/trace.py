"""The executor's output (fuzz/orch_fuzz.c) as one `Outcome` per program: its trace records
in order (key -> value), the kernel's log lines while it ran, and how it ended.

How it ended, `end`: the executor's `E` status (`exit 0`, `signal 9`, `timeout`, `stuck`:
SIGKILL did not take, `env ...`: the guest could not be set up for it), or what the host
found: `crash` (the kernel crashed during it: `crash` holds the console's line), `lost`
(the machine went away for another reason: infrastructure, never compared) and `` (not
run, or cut short).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

HANGS = ("timeout", "stuck", "hung")  # the program did not finish (hung: the whole guest)


@dataclass
class Outcome:
    pid: str
    records: dict[str, str] = field(default_factory=dict)
    klog: list[str] = field(default_factory=list)
    end: str = ""
    crash: str = ""  # the console's crash line, when end == "crash"
    excerpt: str = ""  # the console from the crash on

    @property
    def finished(self) -> bool:
        return bool(self.end)

    @property
    def comparable(self) -> bool:
        """Whether it says something about the kernel (not the infrastructure)."""
        return bool(self.end) and self.end != "lost" and not self.end.startswith("env ")

    @property
    def hung(self) -> bool:
        return self.end in HANGS

    def last_op(self) -> int:
        """Index of the last operation that wrote a record (-1: none)."""
        last = -1
        for k in self.records:
            m = re.match(r"[oc](\d+)", k)
            if m:
                last = max(last, int(m.group(1)))
        return last


def parse(text: str) -> list[Outcome]:
    """Every program the output speaks of, in order; a program cut short has `end` ''."""
    out: list[Outcome] = []
    cur: Outcome | None = None
    for line in text.splitlines():
        key, tab, value = line.partition("\t")
        if not tab:
            continue
        if key == "P":
            cur = Outcome(value)
            out.append(cur)
        elif cur is None:
            continue
        elif key == "K":
            cur.klog.append(value)
        elif key == "E":
            cur.end = value
            cur = None
        else:
            cur.records[key] = value
    return out


def pages(value: str) -> list[tuple[str, str]]:
    """A region record ("@OFF+N RUN,RUN...") as one (bits, content) per page; a pattern run
    "NxBITS:vV.K+" counts K up."""
    _, _, runs = value.partition(" ")
    out: list[tuple[str, str]] = []
    for run in filter(None, runs.split(",")):
        m = re.match(r"(\d+)x([^:]*)(?::(.*))?$", run)
        if not m:
            continue
        n, bits, content = int(m.group(1)), m.group(2), m.group(3) or ""
        pat = re.match(r"v(\d+)\.(\d+)\+$", content)
        for i in range(n):
            out.append((bits, f"v{pat.group(1)}.{int(pat.group(2)) + i}" if pat else content))
    return out


def vmas(value: str) -> list[str]:
    """A maps record as its VMAs ("START+PAGES PERMS")."""
    return [] if value in ("-", "") else value.split(",")


def tags(outcome: Outcome, checkpoint: str) -> list[str]:
    """The pattern tags ("vV.K") in every region at a checkpoint ("c5", "cend")."""
    found = []
    for k, v in outcome.records.items():
        if k.startswith(f"{checkpoint}.r"):
            found += [c for _, c in pages(v) if c.startswith("v")]
    return sorted(found)
