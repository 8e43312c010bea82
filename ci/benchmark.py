#!/usr/bin/env python3
"""Benchmark orch against the bare tools, side by side in one run. Prints figures; asserts
nothing (targets: boot-to-SSH within 1.2x of a bare qemu+ssh loop; a no-change rerun under
20 s on x86_64; a cold build within 1.05x of bare make, same config).

  .venv/bin/python ci/benchmark.py [--arch x86_64,arm64] [--cold] [--boots 3]
  .venv/bin/python ci/benchmark.py --cold-build [--arch x86_64] [-j 2] [--compare-src DIR]
  .venv/bin/python ci/benchmark.py --edit-loop [--arch x86_64,arm64] [--rounds 3] [--workdir D]
  .venv/bin/python ci/benchmark.py --coverage [--arch x86_64,arm64] [--cold] [--rounds 3]

--coverage: orch run vs orch run --coverage of the default cell (ci/coverage_bench.py):
build (with --cold, a cold build each), boot to SSH, the test stage, the coverage stage,
the image size; then --rounds warm reruns of each for medians. With --cold-build, the
build stage of the coverage profile (the default series' files profiled) is timed after
the plain one, wall and CPU seconds.

  .venv/bin/python ci/benchmark.py --page [--page-dir RUN]... [--rounds 3]

--page: the results page of a generated 200-cell merge (and of each --page-dir, a real
run's or merge's output directory) in headless Chromium: page size, load time
(ci/page_bench.py; the target: a 200-cell merge opens in under a second).

--edit-loop: edit one line of mm/userfaultfd.c in a user checkout, then `orch run` on it
vs bare make + a bare QEMU boot + the same tests over ssh, side by side (ci/edit_loop.py);
prints both, their parts and the ratio (target <= 1.15x). --workdir keeps the checkout
and its bare build dir between invocations (default: a temporary directory).

--cold uses an empty cache (and ccache) in a temporary directory, so the first run's stage
times are a real cold build; without it the first run uses the normal cache.

--cold-build: the first build a new user (or a CI job without a cache) waits for. In a
private clone of the embedded 6.1 tree, with orch's own final .config, one after the
other: bare `make bzImage` (host gcc, no ccache), then orch's build stage (build.build:
make through ccache with an empty CCACHE_DIR, headers, store) in a fresh build dir.
--compare-src DIR adds the build stage of another orch checkout (e.g. an older commit,
for a before/after), the same way. Prints wall and CPU seconds and the ratios to bare make.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.base.runner import Runner  # noqa: E402
from orchestrator.kernel import arch as archmod  # noqa: E402
from orchestrator.targets import keys as keysmod  # noqa: E402
from orchestrator.targets import qemu  # noqa: E402
from orchestrator.targets.ssh import GuestSSH  # noqa: E402


def orch_run(arch: str, out: Path, env: dict) -> tuple[float, dict]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "orchestrator", "run", "--arch", arch,
                        "-o", str(out), "-q"], env=env, cwd=ROOT)
    took = time.monotonic() - t0
    meta = json.loads((out / "metadata.json").read_text())
    if r.returncode != 0:
        print(f"  (orch run exited {r.returncode})")
    return took, meta


def boot_orch(a, kernel: Path, initrd: Path, accel: str, keys) -> float:
    """orch's own path: Guest + ready marker + fabric/paramiko connect + first command."""
    port = qemu.free_port()
    spec = qemu.BootSpec(kernel, initrd, port, accel)
    with tempfile.TemporaryDirectory() as d:
        with qemu.Guest(a, spec, Path(d) / "console.log") as g:
            g.wait_ready(120)
            ssh = GuestSSH(port, keys)
            ssh.connect(60)
            res = ssh.run("true")
            took = time.monotonic() - g.started_at
            ssh.close()
            assert res.exit_code == 0
    return took


def boot_bare(a, kernel: Path, initrd: Path, accel: str, keys) -> float:
    """The bare loop: start qemu; run `ssh ... true` until it succeeds."""
    port = qemu.free_port()
    argv = qemu.qemu_argv(a, qemu.BootSpec(kernel, initrd, port, accel))
    with tempfile.TemporaryDirectory() as d:
        kh = Path(d) / "known_hosts"
        kh.write_text(keys.known_hosts_line(port) + "\n")
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            while True:
                r = subprocess.run(["ssh", "-q", "-p", str(port), "-i", str(keys.client),
                                    "-o", f"UserKnownHostsFile={kh}", "-o",
                                    "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=2",
                                    "-o", "BatchMode=yes", "-F", "/dev/null",
                                    "root@127.0.0.1", "true"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                if r.returncode == 0:
                    return time.monotonic() - t0
                if time.monotonic() - t0 > 120:
                    raise RuntimeError("bare loop: no SSH after 120 s")
                time.sleep(0.05)
        finally:
            os.killpg(p.pid, 9)
            p.wait()


# Runs orch's build stage from the checkout on PYTHONPATH (this one, or --compare-src).
BUILD_DRIVER = """
import sys
from pathlib import Path
from orchestrator.kernel import arch
from orchestrator.kernel import build
from orchestrator.base.runner import Runner
a = arch.get(sys.argv[1])
src, bd = Path(sys.argv[2]), Path(sys.argv[3])
args = (a, src, bd, sys.argv[4], Runner(), Path(sys.argv[5]), int(sys.argv[6]))
cov = sys.argv[7].split(",") if len(sys.argv) > 7 else None  # a coverage build's files
tree = Runner().run(["git", "-C", str(src), "rev-parse", "HEAD^{tree}"], always=True)
proof = {"source": {"source_tree": tree.output.strip(), "commit": "", "repo": str(src)},
         "config_text": (bd / ".config").read_text(), **({"coverage": cov} if cov else {})}
try:  # stored with the proof of what it was built from, as every run stores
    k, compiled = build.build(*args, **proof)
except TypeError:  # --compare-src: an orch from before provenance (no such arguments)
    k, compiled = build.build(*args)
assert compiled and (k.store / "complete").exists(), k
print("orch build stage from", build.__file__)
"""


def timed(argv: list[str], env: dict, log: Path, cwd: Path | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of a command and everything it waited for."""
    r0 = os.times()
    t0 = time.monotonic()
    with open(log, "w") as f:
        rc = subprocess.run(argv, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=cwd).returncode
    wall = time.monotonic() - t0
    r1 = os.times()
    if rc != 0:
        raise RuntimeError(f"{argv[:3]}... failed (exit {rc}); see {log}")
    return wall, (r1.children_user - r0.children_user) + (r1.children_system -
                                                          r0.children_system)


# What --cold-build --coverage profiles: the files the default series changes.
COVERAGE_FILES = "fs/userfaultfd.c,mm/rmap.c,mm/userfaultfd.c"


def cold_build(arch_name: str, jobs: int, compare: list[Path], coverage: bool = False) -> None:
    from orchestrator.kernel import build as buildmod
    from orchestrator.kernel import kconfig
    from orchestrator.kernel import tree as treemod

    a = archmod.get(arch_name)
    r = Runner()
    shared = treemod.resolve(None, r, progress=print)  # the import every run uses (untimed)
    work = Path(tempfile.mkdtemp(prefix="orch-coldbuild-"))
    saved = {k: os.environ.get(k) for k in ("ORCH_CACHE", "CCACHE_DIR")}
    try:
        os.environ["ORCH_CACHE"] = str(work / "cache")
        src = work / "linux"
        print(f"== cold build, {a.name}, -j{jobs}: a private clone of {shared.spec} in {src}")
        subprocess.run(["git", "-c", "advice.detachedHead=false", "clone", "-q", "--shared",
                        str(shared.repo), str(src)],
                       check=True)
        cfgdir = treemod.build_dir(src, "config")
        kconfig.configure(a, src, cfgdir, kconfig.fragments_for(a, [], []), r,
                          work / "config.log")
        covdir = treemod.build_dir(src, "config-coverage")
        if coverage:  # the coverage profile's .config (configs/coverage.config)
            kconfig.configure(a, src, covdir, kconfig.fragments_for(a, [], ["coverage"]), r,
                              work / "config-coverage.log")
        env = dict(os.environ, **buildmod.REPRO_ENV)
        runs = [("bare make", None)] + [("orch build stage" + (f" ({d})" if d else ""), d)
                                        for d in [None, *compare]]
        if coverage:
            runs.append(("orch build stage, --coverage", "coverage"))
        results = []
        load0 = os.getloadavg()[0]
        for n, (label, other) in enumerate(runs):
            bd = treemod.build_dir(src, f"bench{n}")
            bd.mkdir()
            cov = other == "coverage"
            shutil.copy((covdir if cov else cfgdir) / ".config", bd / ".config")
            log = work / f"build{n}.log"
            if other is None and label == "bare make":
                wall, cpu = timed(kconfig.make_argv(a, src, bd, [a.image], jobs=jobs), env, log)
            else:
                e = dict(env, CCACHE_DIR=str(work / f"ccache{n}"),
                         PYTHONPATH=str(ROOT if cov or not other else other))
                key = f"bench{n}-{os.getpid()}"
                wall, cpu = timed([sys.executable, "-c", BUILD_DRIVER, a.name, str(src),
                                   str(bd), key, str(log), str(jobs),
                                   *([COVERAGE_FILES] if cov else [])], e,
                                  log.with_suffix(".out"), cwd=work)
            results.append((label, wall, cpu))
            base_w, base_c = results[0][1], results[0][2]
            print(f"  {label:40} {wall:7.1f} s wall ({wall / base_w:.2f}x)  "
                  f"{cpu:7.1f} s CPU ({cpu / base_c:.2f}x)", flush=True)
            shutil.rmtree(bd, ignore_errors=True)
        print(f"  cold build vs bare make, same config: {results[1][1] / results[0][1]:.2f}x "
              f"wall, {results[1][2] / results[0][2]:.2f}x CPU  (load average "
              f"{load0:.1f} -> {os.getloadavg()[0]:.1f}; other jobs on the machine skew wall)")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="x86_64,arm64")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--cold-build", action="store_true",
                    help="cold build vs bare make, same config (no boot figures)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--compare-src", type=Path, action="append", default=[],
                    help="also time the build stage of this orch checkout")
    ap.add_argument("--edit-loop", action="store_true",
                    help="edit -> verdict: orch run vs bare make + boot + tests")
    ap.add_argument("--edit-loop-series", action="store_true",
                    help="the edit loop through a patch of the default series (a copy) on "
                    "the embedded tree, the floor in orch's own build dir")
    ap.add_argument("--rounds", type=int, default=1, help="edit-loop rounds (median)")
    ap.add_argument("--workdir", type=Path,
                    help="edit loop: keep the checkout here; --coverage: keep the runs' "
                    "output directories here")
    ap.add_argument("--coverage", action="store_true",
                    help="orch run vs orch run --coverage: build, boot, tests")
    ap.add_argument("--page", action="store_true",
                    help="the results page's size and load time in headless Chromium")
    ap.add_argument("--page-dir", type=Path, action="append", default=[],
                    help="--page: also this output directory (a real run or merge)")
    args = ap.parse_args()
    if args.page:
        sys.path.insert(0, str(ROOT / "ci"))
        import page_bench

        return page_bench.main([*map(str, args.page_dir), "--rounds", str(max(args.rounds, 3))])
    if args.edit_loop or args.edit_loop_series:
        sys.path.insert(0, str(ROOT / "ci"))
        import edit_loop

        where = args.workdir or Path(tempfile.mkdtemp(prefix="orch-editloop-"))
        where.mkdir(parents=True, exist_ok=True)
        try:
            how = edit_loop.measure_series if args.edit_loop_series else edit_loop.measure
            ratios = {a: how(a, where, args.jobs, args.rounds)
                      for a in args.arch.split(",")}
            print("edit loop, median ratio orch / floor: "
                  + ", ".join(f"{a} {r:.2f}x" for a, r in ratios.items()))
        finally:
            if args.workdir is None:
                shutil.rmtree(where, ignore_errors=True)
        return 0
    if args.cold_build:
        for name in args.arch.split(","):
            cold_build(name, args.jobs, args.compare_src, args.coverage)
        return 0
    env = dict(os.environ)
    tmp = None
    if args.cold:
        tmp = tempfile.mkdtemp(prefix="orch-bench-cache-")
        env["ORCH_CACHE"] = tmp
        env["CCACHE_DIR"] = os.path.join(tmp, "ccache")
        os.environ["ORCH_CACHE"] = tmp
    keep = args.coverage and args.workdir is not None
    work = args.workdir if keep else Path(tempfile.mkdtemp(prefix="orch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.coverage:
            sys.path.insert(0, str(ROOT / "ci"))
            import coverage_bench

            for name in args.arch.split(","):
                coverage_bench.measure(name, work, env, args.rounds)
            return 0
        for name in args.arch.split(","):
            a = archmod.get(name)
            print(f"== {a.name}")
            took, meta = orch_run(a.name, work / f"{a.name}-1", env)
            st = meta["arches"][a.name]["stages"]
            print(f"  first run: {took:.1f} s total; apply {meta['apply'].get('seconds')} s; "
                  + ", ".join(f"{k} {v.get('seconds')} s" for k, v in st.items()))
            print(f"  compiled: {meta['arches'][a.name]['kernel']['compiled']}")
            took2, meta2 = orch_run(a.name, work / f"{a.name}-2", env)
            print(f"  no-change rerun: {took2:.1f} s total, compiled: "
                  f"{meta2['arches'][a.name]['kernel']['compiled']}")
            info = meta2["arches"][a.name]
            kernel = Path(info["kernel"]["store"]) / Path(a.image_path).name
            initrd = Path(info["initramfs"])
            accel = info["accelerator"]
            keys = keysmod.ensure(Runner())
            o, b = [], []
            for _ in range(args.boots):  # interleaved, so drift hits both alike
                o.append(boot_orch(a, kernel, initrd, accel, keys))
                b.append(boot_bare(a, kernel, initrd, accel, keys))
            mo, mb = statistics.median(o), statistics.median(b)
            print(f"  boot-to-first-SSH-command ({accel}, median of {args.boots}): "
                  f"orch {mo:.2f} s, bare qemu+ssh loop {mb:.2f} s, ratio {mo / mb:.2f}x")
            print(f"    orch: {', '.join(f'{x:.2f}' for x in o)}; bare: "
                  f"{', '.join(f'{x:.2f}' for x in b)}")
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
