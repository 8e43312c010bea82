"""Kernel reports in a log, as data: oops, panic, BUG, WARNING, KASAN, lockdep, hung task.

`parse` splits a kernel log (dmesg, or the serial console) into reports, each with its
kind, a syzbot-style title (`KASAN: use-after-free in move_pages_pte`, `WARNING in f`,
`BUG: kernel NULL pointer dereference in f`) and its stack frames (`func+0xoff/0xlen`,
the crash site first). Frames get their `file:line` and the patch that wrote the line
later (triage.py); a WARNING or `kernel BUG at` header carries its own `file:line`.
Both arches' formats: x86_64 (`RIP: 0010:f+0x1/0x2`, `Call Trace:`) and arm64
(`pc : f+0x1/0x2`, `Call trace:`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from orchestrator.kernel import problems

# The timestamp and caller prefixes printk adds.
PREFIX_RE = re.compile(r"^\s*(<\d+>)?(\[\s*\d+\.\d+\]\s?)?(\[\s*[TC]\d+\]\s?)?")
FRAME_RE = re.compile(r"^\s*(\? )?([A-Za-z0-9_.$]+)\+(0x[0-9a-f]+)/(0x[0-9a-f]+)"
                      r"(?: \[(\S+)\])?")
SITE_RE = re.compile(r"^(?:RIP: [0-9a-f]{4}:|pc : )([A-Za-z0-9_.$]+)\+(0x[0-9a-f]+)/"
                     r"(0x[0-9a-f]+)")
AT_RE = re.compile(r" at ([A-Za-z0-9_./-]+\.[chS]):(\d+)")
FUNC_OFF_RE = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+")
ADDR_RE = re.compile(r"(,? ?address:?|at virtual address|for address:?) *[0-9a-fx]+")

# (kind, header pattern), tried in order on each line. The kinds are kernel/problems.py's,
# whose examples each parse to their kind (tests/testing/test_problems.py).
HEADERS: list[tuple[str, re.Pattern]] = [
    ("kasan", re.compile(r"^BUG: KASAN: (\S+) in ([A-Za-z0-9_.$]+)")),
    ("lockdep", re.compile(r"^WARNING: (" + "|".join(problems.LOCKDEP) + ")")),
    ("warning", re.compile(r"^WARNING: (?:CPU: \d+ PID: \d+ )?at (\S+):(\d+) "
                           r"([A-Za-z0-9_.$]+)?")),
    ("bug", re.compile(r"^kernel BUG at (\S+):(\d+)!")),
    ("oops", re.compile(r"^(BUG: kernel NULL pointer dereference|BUG: unable to handle "
                        r"page fault|BUG: unable to handle kernel|Unable to handle kernel "
                        r"[A-Za-z ]+?(?= at |$)|general protection fault)")),
    ("bug", re.compile(r"^(BUG: .*|BUG [a-z0-9_-]+ \(.*)$")),
    ("ubsan", re.compile(r"^UBSAN: (.*)")),
    ("hung_task", re.compile(r"^INFO: task (\S+):(\d+) blocked for more than (\d+) seconds")),
    ("rcu_stall", re.compile(r"^rcu: INFO: \S+ (?:self-)?detected stall")),
    ("oops", re.compile(r"^(?:Internal error: )?Oops(?: - BUG)?: ")),
    ("panic", re.compile(r"^Kernel panic - not syncing: (.*)")),
]
# Lines that close a report's stack: KASAN's other stacks, the trace's end.
STACK_END_RE = re.compile(r"^(Allocated by task|Freed by task|Last potentially related|"
                          r"The buggy address|---\[ end trace|</TASK>|Memory state around)")
# Frames of the reporting machinery itself: never the place a report is about.
INTERNAL_RE = re.compile(
    r"^(dump_stack|dump_stack_lvl|show_stack|dump_backtrace|print_report|"
    r"print_address_description|kasan_report|__kasan_\w+|kasan_\w+|__asan_\w+|"
    r"check_memory_region|kasan_check_range|__warn|warn_slowpath_\w+|report_bug|handle_bug|"
    r"exc_invalid_op|asm_exc_invalid_op|__report_bug|bug_handler|call_break_hook|"
    r"brk_handler|do_debug_exception|el1_dbg|el1h_64_sync_handler|el1h_64_sync|"
    r"lockdep_\w+|__lock_acquire|lock_acquire|validate_chain|check_prev_add|"
    r"check_prevs_add|check_noncircular|print_circular_bug|print_usage_bug|mark_lock|"
    r"__schedule|schedule|schedule_timeout|schedule_preempt_disabled|io_schedule|"
    r"__mutex_lock|mutex_lock_nested|rwsem_down_\w+|panic|die|__die|oops_end|"
    r"page_fault_oops|kernelmode_fixup_or_oops|__bad_area_nosemaphore|bad_area_nosemaphore|"
    r"do_user_addr_fault|exc_page_fault|asm_exc_page_fault|__do_kernel_fault|"
    r"die_kernel_fault|do_page_fault|do_translation_fault|do_mem_abort|el1_abort|"
    r"el1h_64_sync_handler)$")


@dataclass
class Frame:
    """One stack frame; `file`, `line` and `patch` are filled in by triage.py."""

    function: str
    offset: str = ""  # 0x12
    size: str = ""  # 0x340
    module: str = ""
    file: str = ""  # relative to the tree: mm/userfaultfd.c
    line: int = 0
    inlined: list[dict] = field(default_factory=list)  # [{function, file, line}] outward
    patch: str = ""  # the series patch that wrote this line (or "dirty")
    guess: bool = False  # "? f+0x1/0x2": an address the unwinder found on the stack

    @property
    def symbol(self) -> str:
        return f"{self.function}+{self.offset}/{self.size}"

    @property
    def internal(self) -> bool:
        return bool(INTERNAL_RE.match(self.function))


@dataclass
class Report:
    """One kernel report: its kind, title, header line, where the header says it is (a
    WARNING's or a BUG's own file:line), its frames (crash site first) and its text."""

    kind: str
    title: str
    header: str
    file: str = ""
    line: int = 0
    frames: list[Frame] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    fatal: str = ""  # the panic message when the report ended in a panic
    patch: str = ""  # the patch that wrote the header's file:line
    guesses: list[Frame] = field(default_factory=list)  # "? " frames, kept apart

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("guesses")
        d["frames"] = [{k: v for k, v in asdict(f).items() if v not in ("", 0, [], False)}
                       for f in self.frames]
        d["text"] = "\n".join(self.text)
        return {k: v for k, v in d.items() if v not in ("", 0) or k in ("kind", "title")}


def _header(line: str) -> tuple[str, re.Match] | None:
    for kind, rx in HEADERS:
        m = rx.match(line)
        if m:
            return kind, m
    return None


def _start(kind: str, m: re.Match, line: str) -> Report:
    r = Report(kind, "", line)
    if kind == "kasan":
        r.title = f"KASAN: {m.group(1)} in {m.group(2)}"
    elif kind == "lockdep":
        r.title = m.group(1)
    elif kind == "warning":
        r.file, r.line = m.group(1), int(m.group(2))
        r.title = f"WARNING in {m.group(3)}" if m.group(3) else "WARNING"
    elif kind == "bug" and line.startswith("kernel BUG at"):
        r.file, r.line = m.group(1), int(m.group(2))
        r.title = line.rstrip("!").strip()
    elif kind == "bug" and AT_RE.search(line):
        at = AT_RE.search(line)
        r.file, r.line = at.group(1), int(at.group(2))
        r.title = line.strip()
    elif kind == "hung_task":
        r.title = "INFO: task hung"
    elif kind == "panic":
        r.title = line.strip()
    else:
        r.title = ADDR_RE.sub("", FUNC_OFF_RE.sub("", line.strip())).strip().rstrip(",:")
        r.title = r.title.removeprefix("Internal error: ")
    return r


def _finish(r: Report) -> Report:
    """Title the report after its crash site when the header did not name a function.

    A stack the unwinder could only guess (x86_64's UNWINDER_GUESS, tinyconfig's: every
    frame `? f+...`, stale return addresses among them) is kept, its frames marked as
    guesses; a stack with reliable frames drops its guesses."""
    if len(r.frames) <= 1 and r.guesses:
        r.frames += [g for g in r.guesses
                     if not any(f.symbol == g.symbol for f in r.frames)]
    first = next((f for f in r.frames if not f.internal), None)
    if r.kind in ("oops", "ubsan", "rcu_stall", "hung_task", "lockdep") and first:
        if " in " not in r.title:
            r.title = f"{r.title} in {first.function}"
    elif r.kind == "bug" and first and " in " not in r.title and " at " not in r.title:
        r.title = f"{r.title} in {first.function}"
    elif r.kind == "warning" and r.title == "WARNING" and first:
        r.title = f"WARNING in {first.function}"
    return r


def parse(text: str) -> list[Report]:
    """Every report in a kernel log, in order."""
    reports: list[Report] = []
    cur: Report | None = None
    in_stack = backtrace = False
    for raw in text.splitlines():
        line = PREFIX_RE.sub("", raw).rstrip()
        h = _header(line)
        if h:
            kind, m = h
            # An oops line after the BUG it belongs to (x86: "BUG: ... / Oops: 0002 [#1]";
            # arm64: "Unable to handle ... / Internal error: Oops"), a panic after an oops:
            # the same report.
            if cur is not None and kind == "oops" and "Oops" in line and \
                    cur.kind in ("oops", "bug") and not cur.frames:
                cur.text.append(line)
                continue
            if cur is not None and kind == "panic" and cur.kind != "panic":
                cur.fatal = m.group(1)
                cur.text.append(line)
                continue
            if cur is not None:
                reports.append(_finish(cur))
            cur = _start(kind, m, line)
            cur.text.append(line)
            in_stack = backtrace = False
            continue
        if cur is None:
            continue
        cur.text.append(line)
        stripped = line.strip()
        site = SITE_RE.match(stripped)
        if site and not any(f.symbol == f"{site.group(1)}+{site.group(2)}/{site.group(3)}"
                            for f in cur.frames):
            cur.frames.insert(0, Frame(site.group(1), site.group(2), site.group(3)))
            continue
        if stripped == "stack backtrace:":
            backtrace = True
        if stripped in ("Call Trace:", "Call trace:"):
            # lockdep prints the chains' stacks first: its own stack follows "stack
            # backtrace:".
            in_stack = cur.kind != "lockdep" or backtrace
            continue
        if STACK_END_RE.match(stripped):
            in_stack = False
            continue
        fm = FRAME_RE.match(line)
        if in_stack and fm:
            f = Frame(fm.group(2), fm.group(3), fm.group(4), fm.group(5) or "",
                      guess=bool(fm.group(1)))
            if f.guess:
                cur.guesses.append(f)
            elif not cur.frames or cur.frames[-1].symbol != f.symbol or len(cur.frames) > 1:
                cur.frames.append(f)
    if cur is not None:
        reports.append(_finish(cur))
    return reports
