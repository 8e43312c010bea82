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

KNOWN = ("zero-subpages",)


def _encode(pages: list[tuple[str, str]]) -> str:
    runs: list[list] = []
    for bits, content in pages:
        if runs and runs[-1][1:] == [bits, content]:
            runs[-1][0] += 1
        else:
            runs.append([1, bits, content])
    return ",".join(f"{n}x{b}" + (f":{c}" if c else "") for n, b, c in runs)


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


def apply(name: str, records: dict[str, str]) -> dict[str, str]:
    if name == "zero-subpages":
        return zero_subpages(records)
    raise ValueError(name)
