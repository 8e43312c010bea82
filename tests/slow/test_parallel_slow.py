"""Two `orch run` at once on one cache (issue 7, item 6): x86_64 and arm64 of the default
series (store hits when the rest of the slow tier ran first; on a cold cache the two
builds take turns on the tree lock). Both must finish with the right results; the tree lock
covers apply, config and build only, so one run's boot and tests overlap with the other's
work; and the two guests get different SSH forwards.
"""

import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.support.orch import orch_popen

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_BINARIES = sorted(p.stem for p in (ROOT / "selftests").glob("*.c"))
ARCHES = ("x86_64", "arm64")


def _window(meta: dict, arch: str, names: list[str]) -> tuple[float, float]:
    """Wall-clock [start, end] covering the named stages."""
    st = {**meta["arches"][arch]["stages"], "apply": meta["apply"]}
    starts = [dt.datetime.fromisoformat(st[n]["started"]).timestamp() for n in names]
    ends = [s + st[n]["seconds"] for s, n in zip(starts, names, strict=True)]
    return min(starts), max(ends)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def test_two_runs_at_once(tmp_path):
    t0 = time.monotonic()
    procs = {a: orch_popen("run", "--arch", a, "-o", str(tmp_path / a),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for a in ARCHES}
    errs = {a: p.communicate(timeout=2400)[1] for a, p in procs.items()}
    wall = time.monotonic() - t0
    metas = {}
    for a, p in procs.items():
        assert p.returncode == 0, (a, errs[a][-3000:])
        meta = json.loads((tmp_path / a / "metadata.json").read_text())
        metas[a] = meta
        rec = json.loads((tmp_path / a / "results.json").read_text())
        assert [c["arch"] for c in rec["cells"]] == [a]
        suites = {s.name.rsplit(".", 1)[-1]: s for s in JUnitXml.fromfile(
            str(tmp_path / a / "junit.xml"))}
        for binary in EXPECTED_BINARIES:
            s = suites[binary]
            assert s.failures == 0 and s.errors == 0, (a, binary)
        assert suites["uffd_move"].tests >= 20 and suites["uffd_move"].skipped <= 3
        console = (tmp_path / a / a / "console.log").read_text()
        assert "Linux version 6.1." in console
    # two guests, two forwards
    ports = [metas[a]["arches"][a]["target"]["port"] for a in ARCHES]
    assert ports[0] != ports[1]
    # overlap: one run's boot/tests ran while the other held the tree or tested too
    machine = ["selftests", "rootfs", "boot", "test"]
    tree = ["apply", "config", "build"]
    m = {a: _window(metas[a], a, machine) for a in ARCHES}
    t = {a: _window(metas[a], a, tree) for a in ARCHES}
    overlap = max(_overlap(m["x86_64"], t["arm64"]), _overlap(m["arm64"], t["x86_64"]),
                  _overlap(m["x86_64"], m["arm64"]))
    alone = sum(metas[a]["arches"][a]["stages"][n]["seconds"] for a in ARCHES
                for n in tree[1:] + machine) + sum(metas[a]["apply"]["seconds"] for a in ARCHES)
    print(f"two runs at once: wall {wall:.1f}s, stages back to back {alone:.1f}s, "
          f"overlapping {overlap:.1f}s; ports {ports}")
    assert overlap > 1.0
