"""Kernel trees: a user's git checkout (never modified) or a tarball imported once.

Work always happens in a `git worktree` of a repository that orch owns in its cache:
for a tarball, the repository it was imported into; for a user's checkout, a bare
`git clone --shared` of it (objects are borrowed through alternates, nothing is written
to the user's repository, not even a worktree entry). The worktree is kept between runs
so that switching commits only rewrites the files that differ and make stays incremental.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from orchestrator.base.errors import UsageError
from orchestrator.base.runner import Runner
from orchestrator.store import cache

# Named embedded trees: Debian's linux-source packages.
EMBEDDED = {
    "linux-6.1": ("/usr/src/linux-source-6.1.tar.xz", "linux-source-6.1"),
    "linux-6.12": ("/usr/src/linux-source-6.12.tar.xz", "linux-source-6.12"),
}
DEFAULT_TREE = "linux-6.1"

# Fixed identity and dates make an import reproducible: the same tarball gives the same
# commit id on every machine, so base commits in metadata.json can be compared.
IMPORT_ENV = {
    "GIT_AUTHOR_NAME": "orch import",
    "GIT_AUTHOR_EMAIL": "orch@localhost",
    "GIT_COMMITTER_NAME": "orch import",
    "GIT_COMMITTER_EMAIL": "orch@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}
BUILD_PREFIX = ".orch-build-"
KERNEL_MARKERS = ("Makefile", "Kconfig", "mm/Kconfig", "arch/Kconfig")


@dataclass
class Tree:
    """A source of kernel commits."""

    spec: str  # what the user gave (name, path)
    kind: str  # "tarball" or "git"
    repo: Path  # the orch-owned repository in the cache
    origin: Path  # the tarball or the user's checkout
    default_base: str  # commit used when --base is not given
    key: str  # short stable id, used for worktree/build dir names

    def git(self, runner: Runner, *args: str, **kw):
        return runner.run(["git", "--git-dir", str(self.repo), *args], always=True, **kw)


def _is_tarball(p: Path) -> bool:
    return p.is_file() and any(p.name.endswith(s) for s in (".tar", ".tar.xz", ".tar.gz",
                                                              ".tgz", ".tar.bz2", ".tar.zst"))


def resolve(spec: str | None, runner: Runner, progress=print) -> Tree:
    """Turn --tree into a Tree, importing a tarball or cloning a checkout on first use."""
    spec = spec or DEFAULT_TREE
    if spec in EMBEDDED:
        path, pkg = EMBEDDED[spec]
        p = Path(path)
        if not p.exists():
            raise UsageError(
                f"embedded tree {spec}: {path} is missing (apt-get install {pkg})"
            )
        return _import_tarball(spec, p, runner, progress)
    p = Path(spec).expanduser()
    if not p.exists():
        raise UsageError(f"--tree {spec}: no such file or directory")
    p = p.resolve()
    if _is_tarball(p):
        return _import_tarball(spec, p, runner, progress)
    if p.is_dir():
        res = runner.run(["git", "-C", str(p), "rev-parse", "--absolute-git-dir"], always=True)
        if not res.ok:
            raise UsageError(f"--tree {spec}: not a git checkout or a kernel tarball")
        return _shared_clone(spec, p, Path(res.output.strip()), runner)
    raise UsageError(f"--tree {spec}: not a git checkout or a kernel tarball")


def _import_tarball(spec: str, tarball: Path, runner: Runner, progress) -> Tree:
    """Extract once into a cached repository and commit it; its working tree is the
    worktree orch works in (extracting straight into it saves a second 1.3 GB checkout)."""
    st = tarball.stat()
    key = cache.digest(str(tarball), str(st.st_size), str(int(st.st_mtime)))[:12]
    name = tarball.name.split(".tar")[0]
    wt = cache.subdir("work") / f"{name}-{key}"
    repo = wt / ".git"
    done = repo / "orch-imported"
    with cache.locked(cache.subdir("locks") / f"import-{key}.lock"):
        if not done.exists() and runner.dry_run:
            runner.run(["tar", "-xf", str(tarball), "-C", str(wt)])
            runner.run(["git", "-C", str(wt), "add", "-f", "-A"])
            runner.run(["git", "-C", str(wt), "commit", "-m", f"Import {tarball.name}"])
        if not done.exists() and not runner.dry_run:
            progress(f"importing {tarball} into {wt} (once; about a minute)")
            if wt.exists():
                shutil.rmtree(wt)
            staging = wt.with_name(f".staging-{key}")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            try:
                _extract(tarball, staging)
                os.replace(_single_top(staging), wt)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            env = dict(IMPORT_ENV)
            g = ["git", "-C", str(wt)]
            runner.check([*g, "init", "-q"], UsageError, "git init")
            # Debian's .gitignore ignores every top-level path (packaging block):
            # force-add so the import really contains the tree.
            runner.check([*g, "add", "-f", "-A"], UsageError, "git add", env=env)
            runner.check([*g, "commit", "-q", "--no-verify", "-m", f"Import {tarball.name}"],
                         UsageError, "git commit", env=env)
            runner.check([*g, "tag", "orch-import"], UsageError, "git tag")
            done.write_text(str(tarball) + "\n")
    return Tree(spec, "tarball", repo, tarball, "orch-import", f"{name}-{key}")


def _extract(tarball: Path, dest: Path) -> None:
    # tar(1) is faster than tarfile for .xz, and present on every Debian.
    r = Runner().run(["tar", "-xf", str(tarball), "-C", str(dest)])
    if not r.ok:
        try:
            with tarfile.open(tarball) as tf:
                tf.extractall(dest, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise UsageError(f"--tree {tarball}: cannot extract: {exc}") from None


def _single_top(staging: Path) -> Path:
    entries = [e for e in staging.iterdir()]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return staging


def _shared_clone(spec: str, checkout: Path, gitdir: Path, runner: Runner) -> Tree:
    key = cache.digest(str(gitdir))[:12]
    repo = cache.subdir("trees") / f"{checkout.name}-{key}.git"
    with cache.locked(cache.subdir("locks") / f"clone-{key}.lock"):
        if not (repo / "HEAD").exists():
            runner.check(["git", "clone", "-q", "--bare", "--shared", str(checkout), str(repo)],
                         UsageError, f"git clone --shared {checkout}", always=True)
    return Tree(spec, "git", repo, checkout, "HEAD", f"{checkout.name}-{key}")


def resolve_base(tree: Tree, base: str | None, runner: Runner) -> str:
    """--base REF -> full commit id. REFs are looked up in the user's checkout itself."""
    ref = base or tree.default_base
    if tree.kind == "git":
        res = runner.run(["git", "-C", str(tree.origin), "rev-parse", "--verify", "-q",
                          f"{ref}^{{commit}}"], always=True)
    else:
        res = tree.git(runner, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
    if not res.ok or not res.output.strip():
        raise UsageError(f"--base {ref}: no such commit in {tree.origin}")
    sha = res.output.strip().splitlines()[-1]
    for marker in KERNEL_MARKERS:
        if not tree.git(runner, "cat-file", "-e", f"{sha}:{marker}").ok:
            raise UsageError(
                f"--tree {tree.spec} at {ref}: not a kernel tree ({marker} missing)"
            )
    return sha


def source_id(wt: Path, paths: list[str], runner: Runner) -> str:
    """The content id of some paths of HEAD (git tree objects): what a build that reads
    only them depends on (a kselftest build: tools/, the uAPI headers)."""
    res = runner.run(["git", "-C", str(wt), "rev-parse", *[f"HEAD:{p}" for p in paths]],
                     always=True)
    return cache.digest(*res.output.split()) if res.ok else ""


def worktree_path(tree: Tree) -> Path:
    if tree.kind == "tarball":
        return tree.repo.parent  # the imported repository's own working tree
    return cache.subdir("work") / tree.key


def prepare_worktree(tree: Tree, commit: str, runner: Runner) -> Path:
    """Check `commit` out in orch's worktree for this tree, discarding any earlier state."""
    wt = worktree_path(tree)
    if not (wt / ".git").exists():
        if wt.exists():
            shutil.rmtree(wt)
        tree.git(runner, "worktree", "prune")
        res = runner.run(["git", "--git-dir", str(tree.repo), "worktree", "add", "-f",
                          "--detach", str(wt), commit])
        if not res.ok:
            raise UsageError(f"cannot create worktree {wt}: {res.tail[-1] if res.tail else ''}")
        return wt
    g = ["git", "-C", str(wt)]
    if (Path(_gitdir(wt)) / "rebase-apply").exists():
        runner.run([*g, "am", "--abort"])
    res = runner.run([*g, "checkout", "-q", "-f", "--detach", commit])
    if not res.ok:
        raise UsageError(f"cannot check out {commit} in {wt}: {res.tail[-1] if res.tail else ''}")
    runner.run([*g, "clean", "-q", "-f", "-f", "-d", "-x", "-e", f"/{BUILD_PREFIX}*"])
    return wt


def tree_lock(tree: Tree):
    """The per-tree lock; `orch bisect` holds it for its `git bisect run` children."""
    if os.environ.get("ORCH_TREE_LOCK_HELD") == tree.key:
        return nullcontext()
    return cache.locked(cache.subdir("locks") / f"work-{tree.key}.lock")


def build_dir(wt: Path, arch: str) -> Path:
    """The out-of-tree build dir: a direct subdirectory of the worktree, so kbuild uses
    srctree=".." and every compiler command line is the same whatever the worktree's path;
    ccache then hits across trees (another checkout, a bisect clone) with the same sources.
    """
    return wt / f"{BUILD_PREFIX}{arch}"  # make O= creates it


def _gitdir(wt: Path) -> str:
    if (wt / ".git").is_dir():
        return str(wt / ".git")
    text = (wt / ".git").read_text().strip()
    if text.startswith("gitdir:"):
        return text.split(":", 1)[1].strip()
    return str(wt / ".git")


def tree_id(wt: Path, runner: Runner) -> tuple[str, str]:
    """(HEAD commit, HEAD tree object). The tree object identifies the source content."""
    head = runner.run(["git", "-C", str(wt), "rev-parse", "HEAD", "HEAD^{tree}"], always=True)
    lines = head.output.split()
    return lines[0], lines[1]


def env_for_commits() -> dict[str, str]:
    """Identity for commits orch makes in its worktree (git am needs a committer)."""
    return {
        "GIT_COMMITTER_NAME": "orch",
        "GIT_COMMITTER_EMAIL": "orch@localhost",
        "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "orch"),
        "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", "orch@localhost"),
    }
