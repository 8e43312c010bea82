"""`orch gc` and the cache's use markers, on a private cache built by hand."""

import os
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.store import cache, gc
from tests.support.orch import orch

OLD = time.time() - 40 * 86400


def _entry(root: Path, part: str, name: str, used: float | None = None) -> Path:
    e = root / part / name
    e.mkdir(parents=True)
    (e / "blob").write_bytes(b"x" * 4096)
    if used is not None:
        (e / cache.USED).touch()
        os.utime(e / cache.USED, (used, used))
    return e


def _clone(root: Path, origin: Path, key: str) -> tuple[Path, Path]:
    repo = root / "trees" / f"{key}.git"
    subprocess.run(["git", "clone", "-q", "--bare", "--shared", str(origin), str(repo)],
                   check=True)
    wt = root / "work" / key
    subprocess.run(["git", "--git-dir", str(repo), "worktree", "add", "-q", "--detach",
                    str(wt), "HEAD"], check=True)
    return repo, wt


def test_gc_prunes_what_is_stale_and_keeps_the_rest(isolated_cache, tmp_path,
                                                   fake_kernel_repo):
    root = isolated_cache
    gone = tmp_path / "gone"
    subprocess.run(["git", "clone", "-q", str(fake_kernel_repo), str(gone)], check=True)
    stale_repo, stale_wt = _clone(root, gone, "gone-aaaa")
    live_repo, live_wt = _clone(root, fake_kernel_repo, "linux-bbbb")
    subprocess.run(["rm", "-rf", str(gone)], check=True)
    # a tarball import whose tarball is gone, and one whose tarball is there
    tb = tmp_path / "linux-x.tar"
    tb.write_bytes(b"t")
    st = tb.stat()
    key = cache.digest(str(tb), str(st.st_size), str(int(st.st_mtime)))[:12]
    for name, tarball in ((f"linux-x-{key}", tb), ("linux-y-cccc", tmp_path / "nope.tar")):
        (root / "work" / name / ".git").mkdir(parents=True)
        (root / "work" / name / ".git" / "orch-imported").write_text(f"{tarball}\n")
    old_k = _entry(root, "kernels", "x86_64-old", used=OLD)
    new_k = _entry(root, "kernels", "x86_64-new", used=time.time())
    old_s = _entry(root, "selftests", "x86_64-old", used=OLD)
    held = _entry(root, "kernels", "arm64-held", used=OLD)
    half = _entry(root, "kernels", "x86_64-new.tmp-123")
    os.utime(half, (OLD, OLD))
    cpio = root / "initramfs" / "x86_64-old.cpio"
    cpio.parent.mkdir()
    cpio.write_bytes(b"c")
    os.utime(cpio, (OLD, OLD))
    # Another process (a running orch) holds one kernel.
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; "
                               "from orchestrator.store import cache; from pathlib import Path; "
                               f"cache.hold(Path({str(held)!r})); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, ORCH_CACHE=str(root)))
    try:
        assert holder.stdout.readline().strip() == "held"
        lines = []
        gc.gc(days=14, ccache_max="1G", out=lines.append)
    finally:
        holder.kill()
        holder.wait()
    text = "\n".join(lines)
    for p in (stale_repo, stale_wt, root / "work" / "linux-y-cccc", old_k, old_s, half, cpio):
        assert not p.exists(), (p, text)
    for p in (live_repo, live_wt, root / "work" / f"linux-x-{key}", new_k, held):
        assert p.exists(), (p, text)
    assert f"kept {held}: in use by a running orch" in text
    assert "its origin " in text and "unused for 40 days" in text
    assert text.splitlines()[-1].startswith("cache: ")


def test_gc_dry_run_removes_nothing(isolated_cache):
    k = _entry(isolated_cache, "kernels", "x86_64-old", used=OLD)
    r = orch("gc", "--dry-run", env={"ORCH_CACHE": str(isolated_cache)})
    assert r.returncode == 0, r.stderr
    assert f"would remove {k}" in r.stdout and k.exists()


def test_doctor_shows_cache_size_by_part(isolated_cache):
    _entry(isolated_cache, "kernels", "x86_64-a", used=time.time())
    (isolated_cache / "work" / "linux-6.1-x").mkdir(parents=True)
    (isolated_cache / "work" / "linux-6.1-x" / "f").write_bytes(b"y" * 100000)
    r = orch("doctor", "--arch", "x86_64", env={"ORCH_CACHE": str(isolated_cache)})
    lines = r.stdout.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith(f"cache: {isolated_cache}"))
    parts = {ln.split()[0]: ln.split()[1] for ln in lines[i + 1:] if ln.startswith("  ")
             and not ln.startswith("    ") and not ln.startswith("  missing")}
    assert {"work", "trees", "kernels", "selftests", "initramfs", "ccache"} <= set(parts)
    assert "(1 entries)" in next(ln for ln in lines if ln.strip().startswith("kernels"))
    assert any("linux-6.1-x" in ln for ln in lines[i:])


def test_store_use_is_recorded(isolated_cache):
    e = _entry(isolated_cache, "kernels", "x86_64-k", used=OLD)
    cache.touch_used(e)
    assert time.time() - cache.last_used(e) < 60


def test_gc_keeps_a_clone_whose_config_cannot_be_read(isolated_cache, fake_kernel_repo):
    """Seen failing before the fix: any failing `git config` meant "no origin", so a clone
    whose config git could not read (here: a syntax error) was removed with its worktree."""
    repo, wt = _clone(isolated_cache, fake_kernel_repo, "linux-dddd")
    config = repo / "config"
    config.write_text(config.read_text() + "[broken\n")
    lines: list[str] = []
    gc.gc(days=14, ccache_max="1G", out=lines.append)
    text = "\n".join(lines)
    assert repo.exists() and wt.exists(), text
    kept = [ln for ln in lines if str(repo) in ln]
    assert len(kept) == 1 and kept[0].startswith(f"  kept {repo}: ") \
        and "git config" in kept[0] and "bad config" in kept[0], text


def test_gc_removes_a_clone_with_no_origin(isolated_cache, fake_kernel_repo):
    """git's "key not set" (exit 1) is the one answer that means no origin."""
    repo, wt = _clone(isolated_cache, fake_kernel_repo, "linux-eeee")
    subprocess.run(["git", "--git-dir", str(repo), "remote", "remove", "origin"], check=True)
    lines: list[str] = []
    gc.gc(days=14, ccache_max="1G", out=lines.append)
    assert not repo.exists() and not wt.exists(), lines
    assert any(f"removed {repo}" in ln and "it has no origin" in ln for ln in lines), lines


def test_gc_leaves_a_running_verify_alone_and_removes_a_stopped_ones(isolated_cache):
    """gc --verify rebuilds in work/verify-PID-ENTRY: another gc must not take it from
    under a running verify (it is no clone's worktree), and must not keep a dead one's."""
    running = isolated_cache / "work" / f"verify-{os.getpid()}-x86_64-abc"
    stopped = isolated_cache / "work" / "verify-999999999-x86_64-abc"
    for d in (running, stopped):
        (d / "mm").mkdir(parents=True)
    r = orch("gc", env={"ORCH_CACHE": str(isolated_cache)})
    assert r.returncode == 0, r.stderr
    assert running.exists() and not stopped.exists()
    assert "scratch worktree of a stopped gc --verify" in r.stdout
