"""Comparing one program's outcomes on the prototype (A) and the reference (B): the
differences not in the allowlist, and the divergence's signature, which groups programs that
diverge the same way.

- A crash, a hang or a kernel report (WARNING, BUG...) on one side only is a divergence
  (a crash or a hang on both is not: the kernels agree).
- A sequential program is compared record by record (trace.py): each operation's result,
  and at each checkpoint the VMAs, smaps counters, pages and status counters.
- A concurrent program (threads moving pages of the same folios) is compared by
  invariants only, since interleavings differ between kernels: no tagged page lost or
  duplicated between the checkpoint before the threads and the end; the errnos each thread
  operation gives are collected (`Verdict.errnos`) and compared over the whole run by the
  engine: an errno one kernel gives for an operation and the other never does.

A signature names what differs and after which operation, not the sizes or addresses of one
program: "pages after move: bits D only on the reference", "move: -1 EBUSY on the
prototype, 0 ok on the reference".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from orchestrator.fuzz import allowlist as allowmod
from orchestrator.fuzz import normalize, trace
from orchestrator.fuzz.model import Program
from orchestrator.kernel import problems
from orchestrator.testing import reports

SIDES = ("the prototype", "the reference")


@dataclass
class Difference:
    key: str  # the trace record's key ("o5", "c7.maps", "E", "klog", "invariant")
    field: str  # what it is (allowlist.py): op:NAME, maps, smaps, pages, status, end...
    prototype: str | None  # A's value (None: A has no such record)
    reference: str | None
    detail: str = ""  # the first differing page, VMA field...


@dataclass
class Verdict:
    pid: str
    comparable: bool = True  # False: a side's outcome says nothing (infrastructure)
    differences: list[Difference] = field(default_factory=list)
    allowed: Counter = field(default_factory=Counter)  # allowlist id -> records
    signature: str = ""  # "" when the kernels agree
    signatures: list[str] = field(default_factory=list)  # of every difference, first first
    both: str = ""  # a crash or hang on both sides (a finding, not a divergence)
    errnos: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return bool(self.signature)


def field_of(key: str, a: str | None, b: str | None) -> str:
    if re.fullmatch(r"o\d+", key):
        return "op:" + (a or b or "?").split(" ", 1)[0]
    m = re.fullmatch(r"c(?:\d+|end)\.(maps|vma\d+|r\d+|status)", key)
    if m:
        part = m.group(1)
        return {"maps": "maps", "status": "status"}.get(part, "smaps" if part.startswith("vma")
                                                         else "pages")
    if key.startswith("t"):
        return "thread"
    return key


def _norm(value: str | None) -> str:
    """An operation's result without what varies from program to program."""
    if value is None:
        return "nothing"
    v = value.split(" ", 1)[1] if " " in value else value
    v = re.sub(r"move=([1-9]\d*)", "move=N", v)
    v = re.sub(r"@\d+", "@N", v)
    v = re.sub(r"\bh[0-9a-f]{8}\b", "hash", v)
    return v


def _content_class(c: str) -> str:
    if c == "":
        return "none"
    return {"0": "zero", "v": "data", "h": "other", "!": "unreadable"}.get(c[0], c)


def _pages_what(a: str | None, b: str | None) -> tuple[str, str]:
    pa, pb = trace.pages(a or ""), trace.pages(b or "")
    for i in range(max(len(pa), len(pb))):
        x = pa[i] if i < len(pa) else ("absent", "")
        y = pb[i] if i < len(pb) else ("absent", "")
        if x == y:
            continue
        detail = f"page {i}: {x[0]}:{x[1] or '-'} on the prototype, {y[0]}:{y[1] or '-'} " \
                 f"on the reference"
        bx, by = set(x[0]) - {"-"}, set(y[0]) - {"-"}
        # what the page is on both (a bit lost on a moved swap entry is not the same
        # finding as one lost on a present page, and must not hide in its group)
        of = ", of a swapped page" if "S" in bx & by else ", of a present page" \
            if "P" in bx & by else ""
        parts = []
        if bx - by:
            parts.append(f"bits {''.join(sorted(bx - by))} only on the prototype{of}")
        if by - bx:
            parts.append(f"bits {''.join(sorted(by - bx))} only on the reference{of}")
        cx, cy = _content_class(x[1]), _content_class(y[1])
        if cx != cy:
            parts.append(f"content {cx} on the prototype, {cy} on the reference")
        elif x[1] != y[1]:
            parts.append(f"content {cx} differs")
        return "; ".join(parts) or "differ", detail
    return "region bounds differ", f"{a} / {b}"


def _smaps_what(a: str | None, b: str | None) -> tuple[str, str]:
    def fields(v: str | None) -> dict[str, str]:
        if v is None:
            return {}
        head, _, flags = v.partition(" flags=")
        d = dict(kv.split("=", 1) for kv in head.split() if "=" in kv)
        d["flags"] = " ".join(sorted(flags.split()))
        return d
    fa, fb = fields(a), fields(b)
    if not fa or not fb:
        return "VMA only on " + (SIDES[0] if fa else SIDES[1]), f"{a} / {b}"
    names = {"rss": "Rss", "dirty": "Private_Dirty", "lazyfree": "LazyFree",
             "ahp": "AnonHugePages", "swap": "Swap", "flags": "VmFlags"}
    diff = [n for n in names if fa.get(n) != fb.get(n)]
    what = ",".join(names[n] for n in diff)
    if "flags" in diff:
        sa, sb = set(fa["flags"].split()), set(fb["flags"].split())
        marks = [f"+{x}" for x in sorted(sa - sb)] + [f"-{x}" for x in sorted(sb - sa)]
        what += f" ({' '.join(marks)})"
    return what, f"{a} / {b}"


def _after(program: Program, key: str) -> str:
    m = re.match(r"c(\d+|end)\.", key)
    if not m:
        return ""
    at = len(program.ops) if m.group(1) == "end" else int(m.group(1))
    return program.last_op_before(at)


def describe(d: Difference, program: Program) -> tuple[str, str]:
    """(signature, message) of one difference."""
    a, b = d.prototype, d.reference
    if d.field.startswith("op:"):
        idx = int(d.key[1:])
        label = program.op_label(idx)
        sig = f"{label}: {_norm(a)} on the prototype, {_norm(b)} on the reference"
        return sig, f"operation {idx} ({program.ops[idx].text()}): {a} / {b}"
    after = _after(program, d.key)
    if d.field == "maps":
        na, nb = len(trace.vmas(a or "")), len(trace.vmas(b or ""))
        how = ("more VMAs on the prototype" if na > nb else "fewer VMAs on the prototype"
               if na < nb else "VMA bounds or protections differ")
        return f"maps after {after}: {how}", f"{d.key}: {na} VMAs ({a}) / {nb} ({b})"
    if d.field == "smaps":
        what, detail = _smaps_what(a, b)
        return f"smaps {what} after {after}", f"{d.key}: {detail}"
    if d.field == "pages":
        what, detail = _pages_what(a, b)
        return f"pages after {after}: {what}", f"{d.key} {detail}"
    if d.field == "status":
        fa = dict(kv.split("=") for kv in (a or "").split() if "=" in kv)
        fb = dict(kv.split("=") for kv in (b or "").split() if "=" in kv)
        what = ",".join(k for k in ("rssanon", "vmswap") if fa.get(k) != fb.get(k))
        return f"status {what} after {after}", f"{d.key}: {a} / {b}"
    if d.field == "end":
        return f"process end: {_norm('x ' + (a or ''))} on the prototype, " \
               f"{_norm('x ' + (b or ''))} on the reference", f"end: {a} / {b}"
    return f"{d.field}: {d.detail or 'differs'}", f"{d.key}: {a} / {b}"


def _titles(lines: list[str]) -> list[str]:
    found = [ln for ln in lines if problems.is_problem(ln)]
    if not found:
        return []
    titles = [r.title for r in reports.parse("\n".join(lines))]
    return sorted(set(titles)) or sorted({re.sub(r"\d+", "N", ln) for ln in found})


def _crash_title(o: trace.Outcome) -> str:
    rs = reports.parse(o.excerpt or o.crash)
    return rs[0].title if rs else (o.crash or "kernel crash")


def _invariant(o: trace.Outcome, program: Program) -> str:
    checks = [i for i, op in enumerate(program.ops) if op.kind == "check" and not op.tid]
    pre = Counter(trace.tags(o, f"c{checks[-1]}")) if checks else Counter()
    post = Counter(trace.tags(o, "cend"))
    return f"lost={sum((pre - post).values())} dup={sum((post - pre).values())}"


def thread_errnos(o: trace.Outcome, program: Program) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for k, v in o.records.items():
        m = re.fullmatch(r"t\d+\.(\d+)", k)
        if m:
            op = program.ops[int(m.group(1))]
            label = f"{op.label} mode={op.args[5]}" if op.kind == "move" else op.label
            out.setdefault(label, set()).add(v.split()[-1])
    return out


def _ordered(keys: list[str]) -> list[str]:
    """A checkpoint's records with its VMA layout first: the executor writes the maps record
    after the per-VMA ones, and a layout that differs is what the rest follows from."""
    rank = {"maps": 0, "vma": 1, "r": 2, "status": 3}
    first: dict[str, int] = {}
    out = []
    for i, k in enumerate(keys):
        head, dot, part = k.partition(".")
        group = head if dot else k
        first.setdefault(group, i)
        m = re.match(r"[a-z]+", part)
        kind = m.group(0) if m else ""
        out.append((first[group], rank.get(kind, 4), i, k))
    return [k for *_, k in sorted(out)]


def compare(a: trace.Outcome, b: trace.Outcome, program: Program,
            allow: list[allowmod.Entry]) -> Verdict:
    v = Verdict(a.pid)
    if not (a.comparable and b.comparable):
        v.comparable = False
        return v
    crash_a, crash_b = a.end == "crash", b.end == "crash"
    if crash_a or crash_b:
        if crash_a and crash_b:
            v.both = f"crash on both: {_crash_title(a)}"
            return v
        o = a if crash_a else b
        v.differences.append(Difference("E", "crash", a.crash or a.end, b.crash or b.end))
        v.signature = f"crash on {SIDES[0] if crash_a else SIDES[1]}: {_crash_title(o)}"
        v.signatures = [v.signature]
        return v
    if a.hung or b.hung:
        if a.hung and b.hung:
            v.both = f"hang on both in {program.op_label(a.last_op() + 1)}"
            return v
        o = a if a.hung else b
        v.differences.append(Difference("E", "hang", a.end, b.end))
        v.signature = f"hang on {SIDES[0] if a.hung else SIDES[1]} in " \
                      f"{program.op_label(o.last_op() + 1)}"
        v.signatures = [v.signature]
        return v
    ta, tb = _titles(a.klog), _titles(b.klog)
    for t in [x for x in ta if x not in tb] + [x for x in tb if x not in ta]:
        mine = t in ta
        d = Difference("klog", "klog", t if mine else None, None if mine else t)
        if allowmod.allowed(allow, "klog", d.prototype, d.reference):
            v.allowed[allowmod.allowed(allow, "klog", d.prototype, d.reference).id] += 1
            continue
        v.differences.append(d)
        v.signatures.append(f"kernel report on {SIDES[0] if mine else SIDES[1]}: {t}")
    ra, rb = a.records, b.records
    for e in (e for e in allow if e.normalize):
        na, nb = normalize.apply(e.normalize, ra, rb)
        v.allowed[e.id] += sum(1 for k in set(ra) | set(rb)
                               if ra.get(k) != rb.get(k) and na.get(k) == nb.get(k))
        ra, rb = na, nb
    keys = _ordered(list(ra) + [k for k in rb if k not in ra])
    if program.concurrent:
        keys = [k for k in keys if not (k.startswith("t") or k.startswith("cend."))]
        ia, ib = _invariant(a, program), _invariant(b, program)
        if ia != ib:
            v.differences.append(Difference("invariant", "invariant", ia, ib))
        ea, eb = thread_errnos(a, program), thread_errnos(b, program)
        v.errnos = {k: (ea.get(k, set()), eb.get(k, set())) for k in set(ea) | set(eb)}
    pairs = [(k, ra.get(k), rb.get(k)) for k in keys]
    if a.end != b.end:
        pairs.append(("E", a.end, b.end))
    for k, x, y in pairs:
        if x == y:
            continue
        f = "end" if k == "E" else field_of(k, x, y)
        entry = allowmod.allowed([e for e in allow if not e.normalize], f, x, y)
        if entry:
            v.allowed[entry.id] += 1
            continue
        v.differences.append(Difference(k, f, x, y))
    for d in v.differences:
        if d.field == "invariant":
            v.signatures.append(f"concurrent moves: {d.prototype} on the prototype, "
                                f"{d.reference} on the reference")
        elif d.field != "klog":
            v.signatures.append(describe(d, program)[0])
    v.signatures = list(dict.fromkeys(v.signatures))
    v.signature = v.signatures[0] if v.signatures else ""
    return v


def _event(key: str) -> str:
    """Which event of the program a record is about: an operation and the checkpoint after
    it are one (oN, cN.*), the end another (cend.*, E)."""
    m = re.match(r"[oc](\d+)(?:\.|$)", key)
    return m.group(1) if m else "end"


def event_signatures(v: Verdict, program: Program) -> list[str]:
    """The signatures a program is grouped under: its first, and the first of every later
    event (an operation, the end), plus every kernel report. The records of one event
    are facets of one difference (a page swapped on one side only shows in its smaps
    Swap, its pagemap bits and RssAnon at once): one group for them, not one each."""
    out = [v.signature] if v.signature else []
    events: set[str] = set()
    for d in v.differences:
        if d.field == "klog":
            continue
        ev = _event(d.key)
        sig = f"concurrent moves: {d.prototype} on the prototype, {d.reference} on the " \
              f"reference" if d.field == "invariant" else describe(d, program)[0]
        if sig == v.signature:
            events.add(ev)
        if ev not in events:
            events.add(ev)
            out.append(sig)
    out += [s for s in v.signatures if s.startswith("kernel report on ")]
    return list(dict.fromkeys(out))


def focus(v: Verdict, signature: str, program: Program) -> Verdict:
    """The verdict as one of its signatures sees it: that signature first, only its own
    differences (a program that diverges in two ways, one a known difference of the base
    and one the series', stands for each signature with what that signature is about)."""
    if signature == v.signature:
        return v
    own = [d for d in v.differences
           if (d.field == "klog" and signature.startswith("kernel report on ")
               and (d.prototype or d.reference or "") in signature)
           or (d.field not in ("klog", "invariant") and describe(d, program)[0] == signature)]
    return Verdict(v.pid, comparable=v.comparable, signature=signature,
                   signatures=[signature] + [s for s in v.signatures if s != signature],
                   differences=own, allowed=v.allowed, both=v.both, errnos=v.errnos)


def message(v: Verdict, program: Program) -> str:
    """The first difference, in words, for a testcase's message."""
    if not v.differences:
        return v.signature
    d = v.differences[0]
    if d.field in ("crash", "hang", "klog", "invariant"):
        return f"{v.signature} ({d.prototype or '-'} / {d.reference or '-'})"
    return describe(d, program)[1]
