"""The kernel's problem reports, one table: each kind of report (KASAN, UBSAN, lockdep, a
WARNING, a BUG, an oops, a hung task, an RCU stall, a panic), the lines that start one, and
real examples of those lines.

Every consumer reads this table, so a kind added here fails them all:
- a binary's `dmesg_clean` (testing/testrun.py over SSH; the LAVA guest's `grep -E`,
  targets/lava/guest.py);
- the serial console's crash line when a machine is lost (targets/qemu.py, and a LAVA
  job's console: targets/lava/log.py, testing/lavaresults.py);
- testing/reports.py, which parses each kind into a report (tests check that each
  example here parses to its kind).

The patterns are POSIX extended regular expressions that Python's `re` reads the same way
(no `\\s`, `\\d`, `(?:`, no `[[:classes:]]`): busybox's `grep -E` runs them in the guest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    kind: str  # testing/reports.py's Report.kind
    patterns: tuple[str, ...]  # EREs: a line matching one of them reports this kind
    examples: tuple[str, ...]  # lines the kernel prints (without the printk prefix)


# Lockdep's report headers (each printed after "WARNING: ").
LOCKDEP = ("possible circular locking dependency detected",
           "possible recursive locking detected", "inconsistent lock state",
           "suspicious RCU usage", "possible irq lock inversion dependency detected",
           "lock held when returning to user space")

PROBLEMS: tuple[Problem, ...] = (
    Problem("kasan", ("KASAN: ",),
            ("BUG: KASAN: use-after-free in move_pages_pte+0x1a2/0x6a0",)),
    Problem("ubsan", ("UBSAN: ",),
            ("UBSAN: shift-out-of-bounds in mm/userfaultfd.c:1043:12",)),
    Problem("lockdep", LOCKDEP,
            tuple(f"WARNING: {h}" for h in LOCKDEP)),
    Problem("warning", ("WARNING: ",),
            ("WARNING: CPU: 0 PID: 150 at mm/userfaultfd.c:1043 move_pages+0x40/0x200",
             "WARNING: at mm/userfaultfd.c:1043 move_pages+0x40/0x200")),
    Problem("bug", ("kernel BUG at ", "BUG: ", "BUG [a-z0-9_-]+ \\("),
            ("kernel BUG at mm/userfaultfd.c:1043!",
             "BUG: Bad page state in process uffd_move  pfn:04a1b",
             "BUG kmalloc-64 (Not tainted): Poison overwritten")),
    Problem("oops", ("Oops[: ]", "general protection fault", "Unable to handle kernel",
                     "Internal error: "),
            ("BUG: kernel NULL pointer dereference, address: 0000000000000000",
             "Oops: 0000 [#1] PREEMPT SMP NOPTI",
             "general protection fault, probably for non-canonical address 0xdead: 0000",
             "Unable to handle kernel NULL pointer dereference at virtual address "
             "0000000000000000",
             "Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP")),
    Problem("hung_task", ("INFO: task .* blocked for more than",),
            ("INFO: task uffd_move:151 blocked for more than 120 seconds.",)),
    Problem("rcu_stall", ("rcu: INFO: .*detected stall",),
            ("rcu: INFO: rcu_preempt self-detected stall on CPU",
             "rcu: INFO: rcu_sched detected stalls on CPUs/tasks:")),
    Problem("panic", ("Kernel panic - not syncing",),
            ("Kernel panic - not syncing: Fatal exception",)),
)

KINDS = tuple(p.kind for p in PROBLEMS)
# All of them as one ERE: `grep -E "$ERE"` in the guest, LINE_RE here.
ERE = "|".join(pat for p in PROBLEMS for pat in p.patterns)
LINE_RE = re.compile(f"({ERE})")


def is_problem(line: str) -> bool:
    """Whether the kernel log line reports a problem (of any kind in PROBLEMS)."""
    return bool(LINE_RE.search(line))
