"""A fuzz program as data: a header (THP mode, swap device, concurrent threads) and a list of
operations, written in the executor's text format (fuzz/fuzz_core.h parses it):

    P ID
    H thp=always swap=zram threads=0
    mmap OFF NPAGES FLAGS            region N is the N-th mmap, at arena page OFF
    write R PG N VAL | read R PG N   pages [PG, PG+N) of region R (R modulo the regions)
    madv R PG N ADVICE | mprot R PG N PROT | munmap R PG N
    mremap R NEWN grow|move|dontunmap DSTOFF
    fork exit|live|write R PG | reap
    ureg R PG N m|w|mw | unreg R PG N | wp R PG N ON
    move DR DPG SR SPG N MODE MIS    UFFDIO_MOVE; MIS 1: dst+1 byte, 2: len+1, 3: len 0
    clear_refs V | check
    T TID <operation>                a concurrent thread's operation (after the others)
    end

Nothing here runs anything: the strategies (strategies.py) make programs, the executor runs
them, `parse` reads one back (a reproducer, a program from fuzz.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("mmap", "write", "read", "madv", "mprot", "mremap", "munmap", "fork", "reap",
         "ureg", "unreg", "move", "wp", "clear_refs", "check")
ADVICE = ("hugepage", "nohugepage", "dontneed", "free", "pageout", "cold", "dontfork",
          "dofork", "mergeable", "unmergeable", "willneed", "collapse", "populate_write",
          "soft_offline")
PROTS = ("none", "r", "rw")
THP_MODES = ("always", "madvise", "never")
SWAPS = ("none", "zram", "loop")
# How many arguments each kind takes (the executor reads at most 7).
ARITY = {"mmap": 3, "write": 4, "read": 3, "madv": 4, "mprot": 4, "mremap": 4, "munmap": 3,
         "fork": 3, "reap": 0, "ureg": 4, "unreg": 3, "move": 7, "wp": 4, "clear_refs": 1,
         "check": 0}


class ProgramError(ValueError):
    """A program text that is not one."""


@dataclass(frozen=True)
class Op:
    kind: str
    args: tuple = ()
    tid: int = 0  # 0: the main sequence; 1..: a concurrent thread

    def text(self) -> str:
        words = [self.kind, *(str(a) for a in self.args)]
        return (f"T {self.tid} " if self.tid else "") + " ".join(words)

    @property
    def label(self) -> str:
        """The operation's kind, with its advice or mode where that says what it does."""
        if self.kind in ("madv", "mprot", "ureg") and len(self.args) > 3:
            return f"{self.kind} {self.args[3]}"
        if self.kind in ("mremap",) and len(self.args) > 2:
            return f"mremap {self.args[2]}"
        if self.kind == "fork" and self.args:
            return f"fork {self.args[0]}"
        return self.kind


@dataclass(frozen=True)
class Program:
    ops: tuple[Op, ...]
    thp: str = "always"
    swap: str = "none"
    threads: int = 0
    notes: tuple[str, ...] = field(default=(), compare=False)

    def header(self) -> str:
        return f"H thp={self.thp} swap={self.swap} threads={self.threads}"

    def text(self, pid: str = "0") -> str:
        """The program in the executor's format, as one block ending in `end`."""
        return "\n".join([f"P {pid}", self.header(), *(o.text() for o in self.ops), "end"]) \
            + "\n"

    def body(self) -> str:
        """The program without its id: what identifies it (a cache key, a reproducer)."""
        return "\n".join([self.header(), *(o.text() for o in self.ops)])

    @property
    def concurrent(self) -> bool:
        return self.threads > 0

    def size(self) -> tuple[int, int]:
        """(operations, pages named): what shrinking makes smaller."""
        pages = 0
        for o in self.ops:
            nums = [a for a in o.args if isinstance(a, int)]
            if o.kind == "mmap":
                pages += nums[1] if len(nums) > 1 else 0
            elif o.kind == "move":
                pages += nums[4] if len(nums) > 4 else 0
            elif len(nums) >= 3:
                pages += nums[2]
        return len(self.ops), pages

    def op_label(self, index: int) -> str:
        return self.ops[index].label if 0 <= index < len(self.ops) else "end"

    def last_op_before(self, index: int) -> str:
        """The label of the last operation (not a checkpoint) before `index`."""
        for i in range(min(index, len(self.ops)) - 1, -1, -1):
            if self.ops[i].kind != "check":
                return self.ops[i].label
        return "start"


def _word(w: str) -> int | str:
    try:
        return int(w, 0)
    except ValueError:
        return w


def parse(text: str) -> Program:
    """One program from its text (the inverse of Program.text); ProgramError if it is not."""
    thp, swap, threads = "always", "none", 0
    ops: list[Op] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("P "):
            continue
        if line == "end":
            break
        words = line.split()
        if words[0] == "H":
            for w in words[1:]:
                k, _, v = w.partition("=")
                if k == "thp":
                    thp = v
                elif k == "swap":
                    swap = v
                elif k == "threads":
                    threads = int(v)
            continue
        tid = 0
        if words[0] == "T":
            if len(words) < 3:
                raise ProgramError(f"line {n}: a T line needs a thread and an operation")
            tid, words = int(words[1]), words[2:]
        if words[0] not in KINDS:
            raise ProgramError(f"line {n}: unknown operation {words[0]!r}")
        ops.append(Op(words[0], tuple(_word(w) for w in words[1:]), tid))
    if thp not in THP_MODES or swap not in SWAPS:
        raise ProgramError(f"header: thp={thp} swap={swap}: not a mode orch fuzz knows")
    return Program(tuple(ops), thp, swap, threads)


def batch_text(programs: list[tuple[str, Program]]) -> str:
    """A batch file for `orch_fuzz run`: the programs one after the other."""
    return "".join(p.text(pid) for pid, p in programs)
