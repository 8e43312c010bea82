"""Normalizations an allowlist entry can name (`normalize:`), for version differences that no
regular expression over one record can take out, because they move several records at once.

`zero-subpages`: when an anonymous THP is split, 6.12 maps its zero-filled subpages to the
shared zero page (mm/huge_memory.c, `remap_page(folio, nr, RMP_USE_SHARED_ZEROPAGE)`, and
mm/migrate.c's try_to_map_unused_to_zeropage); 6.1 keeps them as pages of their own. The page
then reads the same (zeros) but is not exclusive, and Rss, Private_Dirty and RssAnon count 4
kB less for it. Both sides are rewritten as if every present, exclusive, zero-filled page were
the shared zero page: its X bit dropped, 4 kB taken off its VMA's Rss and Private_Dirty and
off RssAnon. What is left is compared as usual.
"""

from __future__ import annotations

import re
from collections import Counter

from orchestrator.fuzz import trace

KNOWN = ("zero-subpages", "split-soft-dirty")


def _encode(pages: list[tuple[str, str]]) -> str:
    """Pages as the executor writes a region's runs (fuzz_state.h, check_region): a run is
    pages of the same bits and the same content, or of one pattern counting up ("NxB:vV.K+",
    the K of its first page); trace.pages reads it back."""
    runs: list[list] = []  # [count, bits, content of the first page, pattern (V, last K)]
    for bits, content in pages:
        m = re.fullmatch(r"v(\d+)\.(\d+)", content)
        pat = (m.group(1), int(m.group(2))) if m else None
        if runs and runs[-1][1] == bits:
            last = runs[-1]
            if pat and last[3] and last[3] == (pat[0], pat[1] - 1) or \
                    not pat and not last[3] and last[2] == content:
                last[0] += 1
                last[3] = pat
                continue
        runs.append([1, bits, content, pat])
    return ",".join(f"{n}x{b}" + (f":{c}" if c else "") + ("+" if p and n > 1 else "")
                    for n, b, c, p in runs)


def _kv(value: str) -> tuple[dict[str, str], str]:
    head, _, flags = value.partition(" flags=")
    return dict(kv.split("=", 1) for kv in head.split() if "=" in kv), flags


def zero_subpages(records: dict[str, str]) -> dict[str, str]:
    out = dict(records)
    checkpoints = {k.split(".", 1)[0] for k in records if re.match(r"c(\d+|end)\.", k)}
    for ck in checkpoints:
        spans = []
        for v in trace.vmas(records.get(f"{ck}.maps", "")):
            start, _, rest = v.partition("+")
            spans.append((int(start), int(start) + int(rest.split()[0])))
        per_vma: Counter = Counter()
        for k in [k for k in records if k.startswith(f"{ck}.r")]:
            head = records[k].split(" ", 1)[0]
            base = int(head[1:].split("+")[0])
            pages = []
            for i, (bits, content) in enumerate(trace.pages(records[k])):
                if content == "0" and "P" in bits and "X" in bits:
                    bits = bits.replace("X", "")
                    start = next((s for s, e in spans if s <= base + i < e), None)
                    per_vma[start] += 1
                pages.append((bits, content))
            out[k] = f"{head} {_encode(pages)}"
        for start, n in per_vma.items():
            key = f"{ck}.vma{start}"
            if start is None or key not in out:
                continue
            d, flags = _kv(out[key])
            for f in ("rss", "dirty"):
                if f in d:
                    d[f] = str(max(0, int(d[f]) - 4 * n))
            out[key] = " ".join(f"{a}={b}" for a, b in d.items()) + f" flags={flags}"
        status = out.get(f"{ck}.status")
        if status and per_vma:
            d, _ = _kv(status)
            if "rssanon" in d:
                d["rssanon"] = f"{int(d['rssanon']) - 4 * sum(per_vma.values()):+d}"
            out[f"{ck}.status"] = " ".join(f"{a}={b}" for a, b in d.items())
    return out


def split_soft_dirty(a: dict[str, str], b: dict[str, str]) -> tuple[dict[str, str],
                                                                   dict[str, str]]:
    """`split-soft-dirty`: 6.12 splits a dirty PMD into dirty PTEs (mm/huge_memory.c
    __split_huge_pmd_locked: `if (dirty) entry = pte_mkdirty(entry)`, "this may set
    soft-dirty too on some archs": x86's pte_mkdirty does); 6.1 sets the folio dirty
    instead ("we don't do pte_mkdirty when dirty==true because it breaks sparc64"). After
    clear_refs 4, the 512 pages of a split THP are soft-dirty on 6.12 and not on 6.1. A
    soft-dirty bit the reference has and the prototype has not is dropped from both, for a
    whole 512-page aligned block whose pages are present and otherwise the same."""
    a, b = dict(a), dict(b)
    for k in [k for k in a if re.match(r"c(\d+|end)\.r\d+$", k) and k in b]:
        ha, hb = a[k].split(" ", 1)[0], b[k].split(" ", 1)[0]
        if ha != hb:
            continue
        base = int(ha[1:].split("+")[0])
        pa, pb = trace.pages(a[k]), trace.pages(b[k])
        if len(pa) != len(pb):
            continue
        for start in range((-base) % 512, len(pa) - 511, 512):
            block = range(start, start + 512)
            if all("P" in pa[i][0] and "D" not in pa[i][0] and pb[i][0] == pa[i][0] + "D"
                   and pa[i][1] == pb[i][1] for i in block):
                for i in block:
                    pb[i] = pa[i]
        a[k], b[k] = f"{ha} {_encode(pa)}", f"{hb} {_encode(pb)}"
    return a, b


def apply(name: str, a: dict[str, str], b: dict[str, str]) -> tuple[dict[str, str],
                                                                    dict[str, str]]:
    """Both sides' records, rewritten by the normalization `name`."""
    if name == "zero-subpages":
        return zero_subpages(a), zero_subpages(b)
    if name == "split-soft-dirty":
        return split_soft_dirty(a, b)
    raise ValueError(name)
