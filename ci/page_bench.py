#!/usr/bin/env python3
"""The results page's size and load time (ci/benchmark.py --page calls this): a generated
merge of 200 cells (the target: it opens in under a second), and any real output
directories given. Prints figures; asserts nothing.

  .venv/bin/python ci/page_bench.py [--cells 200] [--rounds 3] [DIR...]

The merge is made with orch's record API, as `orch merge` of 200 CI cells would leave it:
2 arches x 100 series versions, 12 test binaries of 8 KTAP tests (+ dmesg_clean) per
cell with their diagnostic lines, a KTAP failure in 1 cell of 20 and a kernel WARNING with
its crash record and 200 lines of kernel log in 1 of 50, and a coverage section in the
documented shape (results.json schema version 2) the size of the project's series: 8
patches, 1,080 added lines (3 in 10 executable), each executable line with its 200
cells. Each page is written by orch's own code (`page.report`, timed), then opened in
headless Chromium `--rounds` times: the load event and the first contentful paint (ms from
navigation start), the wall time of the navigation, the DOM's size.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.results import page  # noqa: E402
from orchestrator.results import record as results  # noqa: E402
from orchestrator.results.record import Cell, Record, TestCase  # noqa: E402
from tests.support.browser import chromium, timings  # noqa: E402

BINARIES = ["uffd_move", "uffd_move_thp", "uffd_move_swap", "uffd_move_hugetlb", "vma_merge",
            "mremap_dontunmap", "uffd_stress", "uffd_wp", "uffd_minor", "madv_populate",
            "ksm_move", "uffd-unit-tests"]
PATCHES = 8
LINES_PER_PATCH = 135  # the project's series: 1,073 added lines in 8 patches, 317 executable


def _cells(n: int) -> list[Cell]:
    cells = []
    for i in range(n):
        arch = ("x86_64", "arm64")[i % 2]
        c = Cell(arch, "linux-6.1", base_commit="69b36d78ad2c" * 3, series=f"uffd-move-v{i // 2}",
                 series_hash=f"{i:064x}", profile="default", head_commit=f"{i:040x}",
                 series_patches=PATCHES, kernel_release="6.1.192+", kernel_key=f"{i:020x}",
                 accelerator="tcg", compiler="gcc (Debian 12.2.0-14+deb12u1) 12.2.0",
                 source=f"../artifacts/orch-cell-{i}")
        c.exit_code, c.status = 0, "passed"
        cells.append(c)
    return cells


def _warning(cid: str) -> TestCase:
    patch = "0005-mm-userfaultfd-move-the-swap-cache"
    frames = [{"function": "__warn", "offset": "0x81", "size": "0x1a0"},
              {"function": "move_pages", "offset": "0x4d2", "size": "0xb80",
               "file": "mm/userfaultfd.c", "line": 1585, "patch": patch}] + \
             [{"function": f"caller_{k}", "offset": "0x10", "size": "0x40",
               "file": "mm/memory.c", "line": 100 + k} for k in range(10)]
    log = "\n".join(f"[   12.{k:06d}] kernel log line {k} of the binary" for k in range(200))
    return TestCase(cid, "uffd_move_swap", "dmesg_clean", "fail", kind="dmesg_clean",
                    message=f"WARNING in move_pages (mm/userfaultfd.c:1585, patch {patch})",
                    output=log, logs={"dmesg": "x86_64/tests/uffd_move_swap.dmesg"},
                    reports=[{"kind": "warning", "title": "WARNING in move_pages",
                              "header": "WARNING: CPU: 1 PID: 80 at mm/userfaultfd.c:1585",
                              "file": "mm/userfaultfd.c", "line": 1585, "patch": patch,
                              "frames": frames, "text": log[-2000:]}])


def merge_of(n: int, rng: random.Random) -> dict:
    """The results.json of a merge of `n` cells, with its coverage section."""
    cells = _cells(n)
    rec = Record(cells=cells, kind="merge", command="orch merge artifacts -o merged",
                 created="2026-12-07T05:00:00+00:00", orch_version="0.1.0")
    for i, c in enumerate(cells):
        fail_at = rng.randrange(len(BINARIES) * 8) if i % 20 == 7 else -1
        for b, binary in enumerate(BINARIES):
            logs = {"output": f"{c.source}/{c.arch}/tests/{binary}.ktap",
                    "console": f"{c.source}/{c.arch}/console.log"}
            for k in range(8):
                bad = b * 8 + k == fail_at
                rec.tests.append(TestCase(
                    c.id, binary, f"case_{k}", "fail" if bad else "pass", message=(
                        f"case_{k}: expected 1 VMA, found 2" if bad else ""),
                    duration=0.01 * k, duration_source="ktap", file=f"selftests/{binary}.c",
                    logs=logs, output="\n".join(f"# case_{k}: step {s} ok" for s in range(4))))
            if i % 50 == 3 and binary == "uffd_move_swap":
                rec.tests.append(_warning(c.id))
                c.exit_code, c.status = 1, "failed"
            else:
                rec.tests.append(TestCase(c.id, binary, "dmesg_clean", "pass",
                                          kind="dmesg_clean", logs=logs))
        if fail_at >= 0:
            c.exit_code, c.status = 1, "failed"
    data = rec.to_json()  # schema_version: this orch's (2 with the coverage work)
    data["coverage"] = coverage_of(cells, rng)
    return data


def coverage_of(cells: list[Cell], rng: random.Random) -> dict:
    patches, totals = [], {c.id: [0, 0] for c in cells}
    for p in range(1, PATCHES + 1):
        lines, ex, ran = [], 0, 0
        for k in range(LINES_PER_PATCH):
            per = {}
            if k % 10 >= 7:  # 3 lines in 10 are executable (the rest: comments, braces...)
                arm_only = k % 17 == 5  # compiled for one arch only
                never = rng.random() < 0.06
                for c in cells:
                    if arm_only and c.arch != "arm64":
                        continue
                    count = 0 if never else rng.randrange(1, 500)
                    per[c.id] = {"count": count,
                                 "ran_by": rng.sample(BINARIES, 2) if count else []}
                    totals[c.id][0] += 1
                    totals[c.id][1] += bool(count)
            status = "not_executable" if not per else \
                "run" if any(v["count"] for v in per.values()) else "not_run"
            ex += status != "not_executable"
            ran += status == "run"
            lines.append({"file": "mm/userfaultfd.c", "line": 1000 + p * 200 + k,
                          "function": f"move_func_{p}" if per else "", "status": status,
                          "cells": per,
                          "text": f"\t\tret = move_step_{k}(src_folio, dst_vma, {k});"})
        patches.append({"index": p, "name": f"{p:04d}-mm-userfaultfd-part-{p}.patch",
                        "subject": f"mm/userfaultfd: part {p}", "dirty": False,
                        "executable": ex, "run": ran, "lines": lines})
    return {"tool": "gcov", "profiled": ["mm/userfaultfd.c", "mm/rmap.c"],
            "cells": {cid: {"executable": e, "run": r, "supported": True, "why": ""}
                      for cid, (e, r) in totals.items()},
            "patches": patches}


def measure(html: Path, rounds: int) -> dict:
    """Median over `rounds` navigations (the first one is a cold browser cache)."""
    got = []
    with chromium() as driver:
        for _ in range(rounds):
            driver.get("about:blank")
            t0 = time.monotonic()
            driver.get(html.resolve().as_uri())
            wall = (time.monotonic() - t0) * 1000
            got.append(timings(driver) | {"wall": wall})
    med = {k: statistics.median(g[k] for g in got) for k in ("load", "wall", "dom")}
    fcp = [g["fcp"] for g in got if g["fcp"] is not None]
    med["fcp"] = statistics.median(fcp) if fcp else None
    med["nodes"] = got[-1]["nodes"]
    med["first_load"] = got[0]["load"]
    return med


def report(name: str, src: Path, html: Path, rounds: int) -> None:
    """Write the page of `src` (a directory or its results.json) to `html`, measure it."""
    t0 = time.monotonic()
    page.report(src, html)
    gen = time.monotonic() - t0
    path = src if src.is_file() else src / results.FILENAME
    rec = json.loads(path.read_text())
    m = measure(html, rounds)
    fcp = f"{m['fcp']:.0f}" if m["fcp"] is not None else "?"
    print(f"{name}: {len(rec['cells'])} cells, {len(rec['tests'])} testcases, results.json "
          f"{path.stat().st_size / 1e6:.1f} MB; "
          f"page {html.stat().st_size / 1e3:.0f} kB, {m['nodes']} elements, written in "
          f"{gen:.2f} s; in Chromium (median of {rounds}): load event {m['load']:.0f} ms "
          f"(first {m['first_load']:.0f}), first paint {fcp} ms, DOM ready {m['dom']:.0f} ms, "
          f"navigation wall {m['wall']:.0f} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="*", type=Path, help="real output directories to measure")
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="write the generated merge here (kept)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "merged"
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        data = merge_of(args.cells, random.Random(25))
        (out / results.FILENAME).write_text(json.dumps(data, indent=2))
        print(f"generated a {args.cells}-cell merge in {time.monotonic() - t0:.1f} s: {out}")
        report(f"{args.cells}-cell merge", out, out / page.FILENAME, args.rounds)
        for i, d in enumerate(args.dirs):  # their pages go to the temporary directory
            report(str(d), d, Path(tmp) / f"{i}-{page.FILENAME}", args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
