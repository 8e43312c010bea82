"""Bisection proofs on real kernels (x86_64): the seed's pgoff=0 experiment is the
regression; the VMA merge selftest is the test that finds it."""

import json
import subprocess
from pathlib import Path

import pytest

from orchestrator.run import bisect
from tests.support.host import git
from tests.support.orch import orch as run_orch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tests" / "data" / "bisect"
PGOFF = sorted((ROOT / "patches" / "anon-pgoff-zero").glob("0*.patch"))


def move_series() -> list[Path]:
    sf = ROOT / "patches" / "uffd-move" / "series"
    if not sf.exists():
        return []
    return [sf.parent / ln.split()[0] for ln in sf.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


def write_series(d: Path, patches: list[Path]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "series").write_text("".join(f"{p}\n" for p in patches))
    return d


def orch(*args):
    return run_orch(*args, timeout=3600)


def test_pgoff_zero_series_boots_and_merge_tests_fail(tmp_path):
    out = tmp_path / "o"
    r = orch("run", "--series", str(ROOT / "patches/anon-pgoff-zero"), "--test", "vma_merge",
             "-o", str(out))
    assert r.returncode == 1, r.stderr[-3000:]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["arches"]["x86_64"]["stages"]["boot"]["status"] == "ok"
    ktap = (out / "x86_64/tests/vma_merge.ktap").read_text()
    assert "not ok" in ktap
    # the failure says how many VMAs were found instead of the expected count
    assert "found" in ktap and "expected" in ktap


def _bisect(tmp_path, patches):
    series = write_series(tmp_path / "series", patches)
    out = tmp_path / "bisect"
    r = orch("bisect", "--series", str(series), "--test", "vma_merge", "-o", str(out))
    data = json.loads((out / "bisect.json").read_text())
    return r, data


def test_series_bisect_names_pgoff_patch(tmp_path):
    harmless = DEMO / "0003-mm-mincore-bisect-demo-harmless-comment-change.patch"
    patches = move_series() + PGOFF + [harmless]
    r, data = _bisect(tmp_path, patches)
    assert r.returncode == 0, r.stderr[-3000:]
    assert data["first_bad"]["name"] == str(PGOFF[0])
    assert data["first_bad"]["index"] == len(move_series()) + 1
    print("steps:", [(s["label"], s["result"], s["seconds"], s["compiled"])
                     for s in data["steps"]])


def test_series_bisect_skips_unbuildable_step(tmp_path):
    demo = sorted(DEMO.glob("0*.patch"))
    patches = move_series() + demo[:2] + PGOFF + demo[2:]
    r, data = _bisect(tmp_path, patches)
    assert r.returncode == 0, r.stderr[-3000:]
    assert data["first_bad"]["name"] == str(PGOFF[0])
    results = {s["label"]: s for s in data["steps"]}
    n, broken_k, bad_k = len(patches), len(move_series()) + 1, len(move_series()) + 3

    def model(k: int) -> str:  # what each prefix is: the break unbuildable, pgoff bad
        return "skip" if k == broken_k else "bad" if k >= bad_k else "good"

    # The search is deterministic: it visits the prefixes it visits on the model, and with
    # this series' layout that path goes through the unbuildable prefix.
    visited: list[int] = []
    bisect.search(n, lambda k: visited.append(k) or model(k))
    assert broken_k in visited
    assert [s["label"] for s in data["steps"]] == [f"prefix {k}/{n}" for k in visited]
    broken = f"prefix {broken_k}/{n}"
    assert results[broken]["result"] == "skip", results[broken]
    assert "build" in results[broken]["why"], results[broken]
    assert all(s["result"] != "bad" or "a test failed" in s["why"] for s in data["steps"])
    print("steps:", [(s["label"], s["result"], s["seconds"], s["compiled"])
                     for s in data["steps"]])


def test_commit_bisect_finds_pgoff_commit(tmp_path):
    """The same on a real git history: a checkout whose commits are those patches."""
    meta_out = tmp_path / "prep"
    r = orch("run", "--series", "none", "--test", "vma_merge", "-o", str(meta_out))
    assert r.returncode == 0, r.stderr[-3000:]
    tree = json.loads((meta_out / "metadata.json").read_text())["inputs"]["tree"]
    repo = tmp_path / "linux"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", tree["worktree"],
                    str(repo)], check=True)
    # the base commit, not the worktree's HEAD: another run on this cache may have moved it
    git(repo, "checkout", "-q", "-B", "user", tree["base_commit"])
    git(repo, "tag", "good-base")
    demo = sorted(DEMO.glob("0*.patch"))
    for p in move_series() + demo[:2] + PGOFF + demo[2:]:
        git(repo, "am", "-q", str(p))
    user_head = git(repo, "rev-parse", "HEAD")
    out = tmp_path / "bisect"
    r = orch("bisect", "--tree", str(repo), "--good", "good-base", "--bad", "HEAD",
             "--test", "vma_merge", "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((out / "bisect.json").read_text())
    assert data["first_bad"]["subject"].startswith("mm/mmap: experiment: start new private")
    assert (out / "git-bisect.log").read_text().count("# first bad commit") == 1
    assert all(s["result"] in ("good", "bad", "skip") for s in data["steps"])
    # the user's checkout was not touched: same HEAD, no bisect in progress
    assert git(repo, "rev-parse", "HEAD") == user_head
    assert not (repo / ".git" / "BISECT_LOG").exists()
    print("steps:", [(s["commit"][:12], s["result"], s["seconds"], s["compiled"])
                     for s in data["steps"]])
