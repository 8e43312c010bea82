"""The kernel store under stress (#27): series that touch the same files, built one after
the other on both arches in one worktree, with orch killed mid-build in between; every
stored kernel is then rebuilt cold (`orch gc --verify`) and must be the same image, and an
entry whose image was swapped for another key's is found and named.

Each series ends with a comment patch carrying a token of this test run, so its kernels
are new keys every time (a warm store still builds, incrementally, as in real use)."""

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support.orch import orch, orch_popen

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PGOFF = sorted((ROOT / "patches" / "anon-pgoff-zero").glob("0*.patch"))
CRASH = ROOT / "tests" / "slow" / "data" / "0009-mm-userfaultfd-orch-crash-test.patch"
BOTH = ["--arch", "x86_64,arm64", "--selftests", "none"]

TOKEN_PATCH = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Orch Developers <orch@example.invalid>
Date: Mon, 7 Dec 2026 00:00:00 +0000
Subject: [PATCH] mm/mincore: store stress test token {token}

Signed-off-by: Orch Developers <orch@example.invalid>
---
 mm/mincore.c | 2 ++
 1 file changed, 2 insertions(+)

diff --git a/mm/mincore.c b/mm/mincore.c
--- a/mm/mincore.c
+++ b/mm/mincore.c
@@ -7,6 +7,8 @@
{sp}
 /*
  * The mincore() system call.
+ *
+ * (store stress test {token})
  */
 #include <linux/pagemap.h>
 #include <linux/gfp.h>
--
2.39.5
"""


def move_series() -> list[Path]:
    sf = ROOT / "patches" / "uffd-move" / "series"
    return [sf.parent / ln.split()[0] for ln in sf.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


def series(d: Path, patches: list[Path], token: str) -> Path:
    d.mkdir(parents=True)
    tp = d / "9999-token.patch"
    tp.write_text(TOKEN_PATCH.format(token=token, sp=" "))
    (d / "series").write_text("".join(f"{p}\n" for p in [*patches, tp]))
    return d


def _stage(out: Path, arch: str, stage: str) -> str | None:
    try:
        meta = json.loads((out / "metadata.json").read_text())
        return meta["arches"][arch]["stages"][stage]["status"]
    except (OSError, ValueError, KeyError):
        return None


def _wait(what, timeout=2400):
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def _build_dir_writers(build_dir: Path) -> list[str]:
    """Processes whose working directory is the build dir (make runs the compilers there)."""
    found = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(d / "cwd").startswith(str(build_dir)):
                found.append(f"{d.name}: {(d / 'cmdline').read_bytes()[:80]!r}")
        except OSError:
            continue
    return found


def built(out: Path, s: Path) -> dict[str, str]:
    """Run `orch run` on series `s` until both kernels are stored, then stop it (SIGTERM in
    the rootfs stage, which comes after the tree phase): {arch: store key}."""
    p = orch_popen("run", *BOTH, "--series", str(s), "-o", str(out),
                   env={"ORCH_TEST_HOLD": "rootfs"}, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: _stage(out, "x86_64", "rootfs") == "running" or p.poll() is not None)
        assert p.poll() is None, p.stderr.read()[-3000:]
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    meta = json.loads((out / "metadata.json").read_text())
    keys = {}
    for a in ("x86_64", "arm64"):
        assert meta["arches"][a]["stages"]["build"]["status"] == "ok", err[-3000:]
        keys[a] = meta["arches"][a]["kernel"]["key"]
    return keys


def killed_mid_build(out: Path, s: Path, arch: str) -> None:
    """SIGKILL orch while make compiles `arch`'s kernel; then nothing may write in its
    build dir (the watchdog ends make and its compilers)."""
    p = orch_popen("run", *BOTH, "--series", str(s), "-o", str(out),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / arch / "build.log"

    def compiling() -> bool:
        try:
            return log.read_text().count("  CC ") >= 3
        except OSError:
            return False

    _wait(compiling)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    wt = Path(json.loads((out / "metadata.json").read_text())["inputs"]["tree"]["worktree"])
    bd = wt / f".orch-build-{arch}"
    deadline = time.monotonic() + 15
    while _build_dir_writers(bd) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _build_dir_writers(bd), "make outlived the orch that started it"


def test_kernels_built_between_killed_builds_are_what_their_keys_say(tmp_path):
    token = uuid.uuid4().hex[:12]
    move = move_series()
    p1 = series(tmp_path / "s1", move, f"{token}-1")
    p2 = series(tmp_path / "s2", PGOFF, f"{token}-2")
    p3 = series(tmp_path / "s3", [*move, CRASH], f"{token}-3")
    keys = {}
    keys["s1"] = built(tmp_path / "r1", p1)
    killed_mid_build(tmp_path / "r2", p2, "x86_64")
    assert "kernel" not in json.loads(
        (tmp_path / "r2" / "metadata.json").read_text())["arches"]["x86_64"]
    # x86_64 builds on what the killed build left; arm64 follows s1
    keys["s3"] = built(tmp_path / "r3", p3)
    killed_mid_build(tmp_path / "r4", p2, "arm64")  # x86_64 of s2 is stored first
    keys["s2"] = built(tmp_path / "r5", p2)  # arm64 after its killed build
    entries = {f"{a}-{k}" for ks in keys.values() for a, k in ks.items()}
    assert len(entries) == 6

    # One entry gets another key's image, its digest updated to match: only a rebuild
    # can tell.
    store = Path(json.loads((tmp_path / "r5" / "metadata.json").read_text())
                 ["arches"]["x86_64"]["kernel"]["store"])
    bad = store.parent / f"x86_64-{keys['s2']['x86_64']}"
    donor = store.parent / f"x86_64-{keys['s1']['x86_64']}"
    (bad / "bzImage").write_bytes((donor / "bzImage").read_bytes())
    info = json.loads((bad / "kernel.json").read_text())
    info["image_sha256"] = json.loads((donor / "kernel.json").read_text())["image_sha256"]
    (bad / "kernel.json").write_text(json.dumps(info))

    r = orch("gc", "--verify", *[e.split("-", 1)[1] for e in sorted(entries)], "--ccache",
             timeout=3600)
    print(r.stdout)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    lines = {e: next(ln for ln in r.stdout.splitlines() if ln.strip().startswith(e + ":"))
             for e in entries}
    assert "MISMATCH" in lines[bad.name] and "removed" in lines[bad.name]
    assert not bad.exists()
    for e in entries - {bad.name}:
        assert ": ok:" in lines[e], lines[e]
    assert "6:" in r.stdout.splitlines()[-1] or "verified 6" in r.stdout
