"""`orch gc --verify`: is a stored kernel what its key says? Rebuilt cold from the source
tree and the .config its kernel.json records, in a scratch worktree of its own (the tree
lock is held only to make the commit), and the images compared by sha256. Builds are reproducible
(build.REPRO_ENV): the same inputs give the same image, cold or incremental.

By default the rebuild does not use ccache, so that nothing of the first build is reused;
`--ccache` trades that for speed (objects then come from ccache, keyed by their content).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.base.errors import EXIT_INFRA, EXIT_PASS, EXIT_TEST_FAILED, UsageError
from orchestrator.base.runner import Runner
from orchestrator.kernel import arch as archmod
from orchestrator.kernel import build
from orchestrator.kernel import tree as treemod
from orchestrator.kernel.kconfig import make_argv
from orchestrator.store import cache


@dataclass
class Outcome:
    entry: str
    status: str  # ok | mismatch | unverifiable
    line: str


def entries(keys: list[str]) -> list[Path]:
    """Complete store entries named by `keys` (a key, a prefix of one, or ARCH-KEY); all of
    them when none is given. An unknown key is a usage error."""
    all_ = sorted(p for p in cache.subdir("kernels").iterdir()
                  if p.is_dir() and (p / "complete").exists())
    if not keys:
        return all_
    picked: list[Path] = []
    for k in keys:
        hit = [p for p in all_ if p.name == k or p.name.split("-", 1)[-1].startswith(k)]
        if not hit:
            raise UsageError(f"orch gc --verify {k}: no stored kernel has that key "
                             f"(see {cache.subdir('kernels')})")
        picked += [p for p in hit if p not in picked]
    return picked


def tree_of(repo: Path) -> treemod.Tree:
    """The Tree (for its worktree and lock) that owns the orch repository `repo`."""
    if repo.name == ".git":  # an imported tarball: the repository of its own worktree
        return treemod.Tree(str(repo.parent), "tarball", repo, repo.parent, "orch-import",
                            repo.parent.name)
    return treemod.Tree(str(repo), "git", repo, repo, "HEAD", repo.name.removesuffix(".git"))


def verify_one(entry: Path, runner: Runner, use_ccache: bool, jobs: int | None,
               log_dir: Path) -> Outcome:
    info = json.loads((entry / "kernel.json").read_text())
    a = archmod.get(info["arch"])
    k = build.Kernel(a, info["key"], entry)
    src, repo = info.get("source_tree"), Path(info.get("repo") or "/nonexistent")
    if not src:
        return Outcome(entry.name, "unverifiable",
                       "stored without its source tree (by an orch before kernel-v3)")
    if not (repo / "HEAD").exists() and not (repo / "objects").exists():
        return Outcome(entry.name, "unverifiable", f"its repository {repo} is gone")
    have = build.compiler_version(a, runner)
    if info.get("compiler") and info["compiler"] != have:
        return Outcome(entry.name, "unverifiable",
                       f"built with {info['compiler']}; this machine has {have}")
    tree = tree_of(repo)
    stored = cache.file_digest(k.image) if k.image.is_file() else "missing"
    start = time.monotonic()
    with treemod.tree_lock(tree):  # only for the commit object: the rebuild is elsewhere
        res = runner.run(["git", "--git-dir", str(repo), "commit-tree", src, "-m",
                          f"orch gc --verify {info['key']}"], env=treemod.env_for_commits(),
                         always=True)
    if not res.ok:
        return Outcome(entry.name, "unverifiable",
                       f"its source tree {src[:12]} is not in {repo} any more")
    # A worktree of its own: runs that use the tree's worktree go on during the rebuild.
    wt = cache.subdir("work") / f"verify-{os.getpid()}-{entry.name}"
    git = ["git", "--git-dir", str(repo)]
    try:
        if not runner.run([*git, "worktree", "add", "-f", "--detach", str(wt),
                           res.output.strip()], always=True).ok:
            return Outcome(entry.name, "unverifiable", f"cannot check tree {src[:12]} out "
                           f"in {wt}")
        scratch = treemod.build_dir(wt, a.name)  # as the run's: the same command lines
        scratch.mkdir()
        shutil.copyfile(k.config, scratch / ".config")
        cc, env = build.make_env(a, info["key"], wt, use_ccache)
        if not use_ccache:
            env["CCACHE_DISABLE"] = "1"
        log = log_dir / f"verify-{entry.name}.log"
        made = runner.run(make_argv(a, wt, scratch, [a.image], jobs=jobs, cc=cc), env=env,
                          log=log, tail_lines=50)
        if not made.ok:
            return Outcome(entry.name, "unverifiable",
                           f"the cold rebuild failed (log: {log}): {made.tail[-1:]}")
        rebuilt = cache.file_digest(scratch / a.image_path)
    finally:
        shutil.rmtree(wt, ignore_errors=True)
        runner.run([*git, "worktree", "prune"], always=True)
    secs = time.monotonic() - start
    if rebuilt == stored:
        return Outcome(entry.name, "ok", f"ok: {k.image.name} sha256 {rebuilt[:12]} rebuilt "
                       f"cold in {secs:.0f}s from tree {src[:12]}")
    recorded = info.get("image_sha256", "")
    return Outcome(entry.name, "mismatch",
                   f"MISMATCH: the stored {k.image.name} (sha256 {stored[:12]}"
                   f"{'' if stored == recorded else f', recorded {recorded[:12]}'}) is not "
                   f"what its key builds (sha256 {rebuilt[:12]}, tree {src[:12]}, "
                   f"{secs:.0f}s)")


def verify(keys: list[str], use_ccache: bool = False, jobs: int | None = None,
           remove: bool = True, out=print) -> int:
    """Exit 0: every entry verified; 1: an entry is not what its key says (removed unless
    `remove` is False); 3: some could not be verified (and none mismatched)."""
    runner = Runner()
    picked = entries(keys)
    if not picked:
        out(f"no stored kernels in {cache.subdir('kernels')}")
        return EXIT_PASS
    log_dir = cache.subdir("verify")
    results = []
    for e in picked:
        out(f"verify {e.name}: rebuilding cold{' (ccache)' if use_ccache else ''} ...")
        o = verify_one(e, runner, use_ccache, jobs, log_dir)
        if o.status == "mismatch" and remove:
            with cache.try_exclusive(cache.use_lock(e)) as free:
                if free:
                    shutil.rmtree(e, ignore_errors=True)
                    o.line += "; removed"
                else:
                    o.line += "; in use by a running orch, not removed"
        out(f"  {e.name}: {o.line}")
        results.append(o)
    bad = [o.entry for o in results if o.status == "mismatch"]
    unsure = [o.entry for o in results if o.status == "unverifiable"]
    out(f"verified {len(results)}: {len(results) - len(bad) - len(unsure)} ok, "
        f"{len(bad)} mismatch{' (' + ', '.join(bad) + ')' if bad else ''}, "
        f"{len(unsure)} unverifiable")
    return EXIT_TEST_FAILED if bad else EXIT_INFRA if unsure else EXIT_PASS
