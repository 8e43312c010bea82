"""The tree as it is on disk: a checkout's uncommitted changes, read without touching it."""

import hashlib
import subprocess

import pytest

from orchestrator.base.errors import ApplyError
from orchestrator.base.runner import Runner
from orchestrator.kernel import dirty
from orchestrator.kernel import tree as treemod
from tests.support.host import git


def snapshot(repo):
    """Everything a run must leave as it was: status, index bytes, object count."""
    return (git(repo, "status", "--porcelain", "--untracked-files=all"),
            (repo / ".git/index").read_bytes(),
            git(repo, "count-objects", "-v"),
            git(repo, "stash", "list"))


def test_clean_checkout_is_not_dirty(fake_kernel_repo, isolated_cache):
    t = treemod.resolve(str(fake_kernel_repo), Runner())
    assert dirty.state(t, Runner()) is None
    (fake_kernel_repo / "mm/x.o").write_text("ignored")  # an ignored file is not an edit
    (fake_kernel_repo / ".gitignore").write_text("*.o\n")
    git(fake_kernel_repo, "add", ".gitignore")
    git(fake_kernel_repo, "commit", "-qm", "ignore")
    assert dirty.state(t, Runner()) is None


def test_tracked_staged_and_untracked_edits_without_touching_the_checkout(
        tmp_path, fake_kernel_repo, isolated_cache):
    repo = fake_kernel_repo
    (repo / ".gitignore").write_text("*.o\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-qm", "ignore")
    (repo / "mm/mmap.c").write_text((repo / "mm/mmap.c").read_text().replace(
        "line 7\n", "line seven\n"))
    (repo / "Makefile").write_text("all:\n\t@echo staged\n")
    git(repo, "add", "Makefile")
    (repo / "mm/new.c").write_text("int new_file;\n")
    (repo / "mm/build.o").write_bytes(b"\0ignored")
    (repo / "mm/blob.bin").write_bytes(bytes(range(256)))  # not UTF-8: a binary diff
    before = snapshot(repo)
    t = treemod.resolve(str(repo), Runner())
    d = dirty.state(t, Runner())
    assert d is not None
    assert sorted(d.files) == ["Makefile", "mm/blob.bin", "mm/mmap.c", "mm/new.c"]
    assert d.head == git(repo, "rev-parse", "HEAD").strip()
    assert d.sha256 == hashlib.sha256(d.diff).hexdigest()
    assert b"+line seven" in d.diff and b"GIT binary patch" in d.diff
    assert snapshot(repo) == before  # nothing written to the user's repository
    # The same state gives the same tree and hash; an edit changes both.
    again = dirty.state(t, Runner())
    assert (again.tree, again.sha256) == (d.tree, d.sha256)
    (repo / "mm/new.c").write_text("int new_file = 1;\n")
    assert dirty.state(t, Runner()).sha256 != d.sha256

    # Applied after the series in orch's worktree: one more commit, with what is on disk.
    wt = treemod.prepare_worktree(t, d.head, Runner())
    saved = tmp_path / "dirty.diff"
    dirty.apply(d, wt, saved, Runner(), tmp_path / "apply.log")
    assert saved.read_bytes() == d.diff
    assert git(wt, "rev-parse", "HEAD^{tree}").strip() == d.tree
    assert git(wt, "log", "-1", "--format=%s").startswith(dirty.SUBJECT)
    assert (wt / "mm/blob.bin").read_bytes() == bytes(range(256))
    assert not (wt / "mm/build.o").exists()


def test_edit_that_does_not_apply_after_the_series(tmp_path, fake_kernel_repo,
                                                   isolated_cache):
    repo = fake_kernel_repo
    (repo / "mm/mmap.c").write_text("entirely new\n")
    t = treemod.resolve(str(repo), Runner())
    d = dirty.state(t, Runner())
    wt = treemod.prepare_worktree(t, d.head, Runner())
    (wt / "mm/mmap.c").write_text("a series rewrote it\n")
    subprocess.run(["git", "-C", str(wt), "commit", "-qam", "series"], check=True,
                   env={**treemod.env_for_commits(), "PATH": "/usr/bin:/bin"})
    with pytest.raises(ApplyError, match=r"uncommitted changes in .* \(1 file: mm/mmap.c\) "
                       r"do not apply after the series.*--committed"):
        dirty.apply(d, wt, tmp_path / "dirty.diff", Runner(), tmp_path / "apply.log")
