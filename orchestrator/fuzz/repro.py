"""A divergence as a standalone C program: one KTAP test for `orch run --selftests DIR`
that fails (exit 1) on a kernel that behaves as the prototype did and passes (exit 0) on
one that behaves as the reference did.

The file is self-contained: the executor's headers (fuzz/*.h, the code that found the
divergence) are inlined, then the minimized program's text and the trace records that
differed, with the reference's values (fuzz/fuzz_repro.h compares them). A kernel report
during the program fails it too, and a crash fails the run that runs it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from orchestrator.base.paths import FUZZ
from orchestrator.fuzz import diff, trace
from orchestrator.fuzz.model import Program
from orchestrator.kernel import problems

HEADERS = ("fuzz_core.h", "fuzz_state.h", "fuzz_ops.h", "fuzz_env.h", "fuzz_repro.h")


def slug(signature: str, limit: int = 48) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", signature.lower()).strip("_")
    return s[:limit].rstrip("_") or "divergence"


def name(signature: str) -> str:
    """The reproducer's name: the signature's first words and a hash of all of it (two
    signatures alike in their first 48 characters would otherwise share a file)."""
    digest = hashlib.sha256(signature.encode()).hexdigest()[:8]
    return f"repro_{slug(signature)}_{digest}"


def c_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def c_string(text: str) -> str:
    """A C string literal, one source line per line of `text`."""
    return "\n".join(f'\t"{c_escape(ln)}\\n"' for ln in text.splitlines())


def expectations(v: diff.Verdict, outs: tuple[trace.Outcome, trace.Outcome]) -> \
        list[tuple[str, str]]:
    """(key, the reference's value) of each record that differed; the end status "exit 0"
    for a crash or a hang (the reference finished); nothing for a kernel report (the
    reproducer fails on any). The value is the reference's record as the executor wrote it
    (outs[1]), not as the allowlist's normalizations rewrote it for comparing: the
    reproducer checks what the kernel writes."""
    out: list[tuple[str, str]] = []
    for d in v.differences:
        if d.field in ("klog", "invariant", "thread"):
            continue
        if d.field in ("crash", "hang"):
            out.append(("E", outs[1].end or "exit 0"))
            continue
        raw = (outs[1].end or None) if d.key == "E" else outs[1].records.get(d.key)
        tokens = differing_tokens(d) if raw is not None else None
        out.append((d.key, tokens if tokens else raw if raw is not None else "<absent>"))
    seen: set[str] = set()
    return [(k, x) for k, x in out if not (k in seen or seen.add(k))]


def _words(value: str) -> set[str]:
    """A record of fields as words: "rss=8 dirty=0 flags=rd wr" -> rss=8, dirty=0, rd, wr
    (the first flag keeps its "flags=")."""
    head, sep, flags = value.partition(" flags=")
    words = set(head.split())
    if sep:
        words |= {w for w in flags.split()} | {"flags=" + flags.split()[0]} \
            if flags.split() else set()
    return words


def differing_tokens(d: diff.Difference) -> str | None:
    """For a record of fields (smaps, status) on both sides: "~" and the reference's words
    that the prototype lacks, "!" before the prototype's words the reference lacks, as
    compared (after the allowlist's normalizations), so that the reproducer checks what
    differed and nothing the allowlist took out or that merely came along (a reproducer
    that checks a whole smaps line fails wherever any field differs: on a series prefix
    without the PMD path, say, where AnonHugePages does). None: check the whole record."""
    if d.field not in ("smaps", "status") or d.prototype is None or d.reference is None:
        return None
    a, b = _words(d.prototype), _words(d.reference)
    want = sorted(b - a, key=d.reference.find) + [f"!{w}" for w in
                                                 sorted(a - b, key=d.prototype.find)]
    want = [w for w in want if not w.startswith(("flags=", "!flags="))]
    return "~" + " ".join(want) if want else None


def first_divergent_op(v: diff.Verdict, program: Program) -> int:
    """The index of the first operation whose record (oN) or checkpoint (cN.*) differed;
    the end (cend, E, klog...) counts as after every operation."""
    found = len(program.ops)
    for d in v.differences:
        m = re.match(r"[oc](\d+)(?:\.|$)", d.key)
        if m:
            found = min(found, int(m.group(1)))
    return found


def preconditions(v: diff.Verdict, outs: tuple[trace.Outcome, trace.Outcome],
                  program: Program) -> list[tuple[str, str]]:
    """("?oN", value) for every operation before the first divergent one that both kernels
    answered alike, as they wrote it: the reproducer skips on a kernel that answers one of
    them otherwise (it did not run the program as they did)."""
    first = first_divergent_op(v, program)
    out = []
    for k, val in outs[1].records.items():
        m = re.fullmatch(r"o(\d+)", k)
        if m and int(m.group(1)) < first and outs[0].records.get(k) == val:
            out.append((f"?{k}", val))
    return out


def inlined_headers(directory: Path = FUZZ) -> str:
    """The executor's headers, their own includes taken out; first the kernel problem
    lines' ERE (kernel/problems.py, the one table) that fuzz_repro.h matches the log with."""
    parts = [f'#define KLOG_PROBLEMS_ERE "{c_escape(problems.ERE)}"\n']
    for h in HEADERS:
        text = (directory / h).read_text()
        parts.append(re.sub(r'^#include "[^"]+"\n', "", text, flags=re.M))
    return "\n".join(parts)


def source(name: str, signature: str, program: Program, v: diff.Verdict,
           outs: tuple[trace.Outcome, trace.Outcome], about: list[str]) -> str:
    """The reproducer's C source. `about`: lines for its comment (where it was found)."""
    expect = preconditions(v, outs, program) + expectations(v, outs)
    rows = "\n".join(f'\t{{ "{k}", "{c_escape(val)}" }},' for k, val in expect) \
        or '\t{ "E", "exit 0" },'
    proto = {d.key: d.prototype for d in v.differences}
    comment = [f"{name}.c - generated by orch fuzz: {signature}", "", *about, "",
               "Records where the prototype differed, as compared (after the allowlist's",
               "normalizations; expect[] below holds the reference's records as written):"]
    for d in v.differences[:12]:
        comment.append(f"  {d.key}: {proto.get(d.key) or '-'} / {d.reference or '-'}")
    body = "\n".join(" * " + ln if ln else " *" for ln in comment)
    return f"""// SPDX-License-Identifier: GPL-2.0
/*
{body}
 *
 * Build and run it as a selftest: orch run --selftests DIR --test {name}
 */
{inlined_headers()}

static const char program[] =
{c_string(program.text("repro"))};

static const char *const expect[][2] = {{
{rows}
}};

int main(void)
{{
\treturn repro_main("{name}", program, expect, (int)(sizeof(expect) / sizeof(expect[0])));
}}
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.c"
    path.write_text(text)
    return path
