#!/usr/bin/env python3
"""Benchmark orch against the bare tools, side by side in one run. Prints figures; asserts
nothing (targets: boot-to-SSH within 1.2x of a bare qemu+ssh loop; a no-change rerun under
20 s on x86_64).

  .venv/bin/python ci/benchmark.py [--arch x86_64,arm64] [--cold] [--boots 3]

--cold uses an empty cache (and ccache) in a temporary directory, so the first run's stage
times are a real cold build; without it the first run uses the normal cache.
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

from orchestrator import arch as archmod  # noqa: E402
from orchestrator import keys as keysmod  # noqa: E402
from orchestrator import qemu  # noqa: E402
from orchestrator.runner import Runner  # noqa: E402
from orchestrator.ssh import GuestSSH  # noqa: E402


def orch_run(arch: str, out: Path, env: dict) -> tuple[float, dict]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", "--arch", arch,
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="x86_64,arm64")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--boots", type=int, default=3)
    args = ap.parse_args()
    env = dict(os.environ)
    tmp = None
    if args.cold:
        tmp = tempfile.mkdtemp(prefix="orch-bench-cache-")
        env["ORCH_CACHE"] = tmp
        env["CCACHE_DIR"] = os.path.join(tmp, "ccache")
        os.environ["ORCH_CACHE"] = tmp
    work = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    try:
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
        shutil.rmtree(work, ignore_errors=True)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
