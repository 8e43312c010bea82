"""`ci/benchmark.py --coverage`: what `orch run --coverage` costs against the plain run of
the same cell (the default series on the embedded 6.1 tree), per arch, stage by stage.

For each arch: the plain run, then the coverage run (with --cold both in one empty cache:
each is then a cold build, since the coverage .config shares no ccache entry with the plain
one), then `rounds` warm reruns of each, alternating (store hits: no compile), for the
medians of boot to SSH, the test stage and the coverage stage. Prints the figures and the
ratios; asserts nothing.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(arch: str, out: Path, env: dict, coverage: bool) -> dict:
    argv = [sys.executable, "-m", "orchestrator", "run", "--arch", arch, "-o", str(out),
            "-q", *(["--coverage"] if coverage else [])]
    t0 = time.monotonic()
    rc = subprocess.run(argv, env=env, cwd=ROOT).returncode
    took = time.monotonic() - t0
    meta = json.loads((out / "metadata.json").read_text())
    a = meta["arches"][arch]
    st = a["stages"]
    sec = lambda k: float(st.get(k, {}).get("seconds") or 0.0)  # noqa: E731
    fig = {"rc": rc, "total": took, "build": sec("build"), "compiled": a["kernel"]["compiled"],
           "boot": float(a.get("boot_to_ssh_seconds") or 0.0), "test": sec("test"),
           "coverage": sec("coverage"), "key": a["kernel"]["key"]}
    store = Path(a["kernel"]["store"] or ".")
    image = next((p for p in store.glob("*Image") if p.is_file()), None)
    fig["image_mb"] = image.stat().st_size / 2**20 if image else 0.0
    if coverage and (out / "results.json").is_file():
        cov = json.loads((out / "results.json").read_text()).get("coverage") or {}
        c = next(iter(cov.get("cells", {}).values()), {})
        fig["lines"] = f"{c.get('run', 0)}/{c.get('executable', 0)}"
    return fig


def show(label: str, f: dict) -> None:
    print(f"  {label:22} total {f['total']:6.1f} s | build {f['build']:6.1f} s "
          f"(compiled: {f['compiled']}) | boot to SSH {f['boot']:5.2f} s | test "
          f"{f['test']:6.1f} s | coverage {f['coverage']:5.1f} s | image "
          f"{f['image_mb']:.1f} MB" + (f" | lines run {f['lines']}" if "lines" in f else "")
          + (f" | exit {f['rc']}" if f["rc"] else ""), flush=True)


def measure(arch: str, work: Path, env: dict, rounds: int) -> None:
    print(f"== {arch}: orch run vs orch run --coverage")
    first = {cov: run(arch, work / f"{arch}-{cov}-0", env, cov) for cov in (False, True)}
    show("plain, first", first[False])
    show("coverage, first", first[True])
    b0, b1 = first[False]["build"], first[True]["build"]
    if first[False]["compiled"] and first[True]["compiled"]:
        print(f"  build, first run each: coverage/plain {b1 / b0:.2f}x ({b1 - b0:+.1f} s)")
    warm: dict[bool, list[dict]] = {False: [], True: []}
    for i in range(1, rounds + 1):  # alternating, so drift on the machine hits both alike
        for cov in (False, True):
            warm[cov].append(run(arch, work / f"{arch}-{cov}-{i}", env, cov))
    if not rounds:
        return
    med = {cov: {k: statistics.median(f[k] for f in warm[cov])
                 for k in ("total", "boot", "test", "coverage")} for cov in warm}
    for k in ("boot", "test", "total"):
        p, c = med[False][k], med[True][k]
        print(f"  {k:6} median of {rounds}: plain {p:6.2f} s, coverage {c:6.2f} s "
              f"({c / p:.2f}x)" if p else f"  {k}: -")
    print(f"  coverage stage (gcov/gcovr, per-patch lines) median {med[True]['coverage']:.1f} s")
