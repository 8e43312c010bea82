import subprocess

import pytest

from orchestrator.base.errors import ApplyError, UsageError
from orchestrator.base.runner import Runner
from orchestrator.kernel import series, tree
from tests.conftest import make_patch
from tests.support.host import git


def _edit_line(n, new):
    def edit(repo):
        p = repo / "mm/mmap.c"
        lines = p.read_text().splitlines(True)
        lines[n - 1] = new + "\n"
        p.write_text("".join(lines))
    return edit


def test_series_file_order_comments_and_missing(tmp_path, fake_kernel_repo):
    d = tmp_path / "s"
    d.mkdir()
    (d / "a.patch").write_text(make_patch(fake_kernel_repo, _edit_line(3, "A"), "mm: a"))
    (d / "b.patch").write_text(make_patch(fake_kernel_repo, _edit_line(30, "B"), "mm: b"))
    (d / "series").write_text("# comment\nb.patch\n\na.patch -p1\n")
    got = series.load(str(d))
    assert [p.name for p in got] == ["b.patch", "a.patch"]
    assert got[0].subject == "[PATCH] mm: b"
    (d / "series").write_text("a.patch\nmissing.patch\n")
    with pytest.raises(UsageError, match=r"series:2: patch file missing.patch does not exist"):
        series.load(str(d))


def test_directory_sorted_skips_cover_letter(tmp_path, fake_kernel_repo):
    d = tmp_path / "s"
    d.mkdir()
    (d / "0002-b.patch").write_text(make_patch(fake_kernel_repo, _edit_line(30, "B"), "b"))
    (d / "0001-a.patch").write_text(make_patch(fake_kernel_repo, _edit_line(3, "A"), "a"))
    (d / "0000-cover-letter.patch").write_text(
        "From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 0/2] cover\n\nblurb\n")
    assert [p.name for p in series.load(str(d))] == ["0001-a.patch", "0002-b.patch"]


def test_mbox_is_split_and_cover_dropped(tmp_path, fake_kernel_repo, isolated_cache):
    a = make_patch(fake_kernel_repo, _edit_line(3, "A"), "mm: a")
    b = make_patch(fake_kernel_repo, _edit_line(30, "B"), "mm: b")
    cover = "From 0 Mon Sep 17 00:00:00 2001\nFrom: x <x@y>\nSubject: [PATCH 0/2] c\n\nhi\n\n"
    mbox = tmp_path / "s.mbox"
    mbox.write_text(cover + a + "\n" + b)
    got = series.load(str(mbox))
    assert [p.subject for p in got] == ["[PATCH] mm: a", "[PATCH] mm: b"]


@pytest.mark.parametrize("content,msg", [("", "is empty"), ("hello world\n", "is not a patch")])
def test_empty_or_non_patch(tmp_path, content, msg):
    f = tmp_path / "x.patch"
    f.write_text(content)
    with pytest.raises(UsageError, match=msg):
        series.load(str(f))


def test_none_and_missing():
    assert series.load("none") == []
    with pytest.raises(UsageError, match="no such file"):
        series.load("/nonexistent/series")


def test_apply_in_worktree_and_conflict_names_file_and_hunk(tmp_path, fake_kernel_repo,
                                                            isolated_cache):
    good = tmp_path / "good.patch"
    good.write_text(make_patch(fake_kernel_repo, _edit_line(3, "A"), "mm: good"))
    # A patch made against a different line 30 cannot apply to the pristine tree.
    git(fake_kernel_repo, "checkout", "-q", "-b", "other")
    _edit_line(30, "X")(fake_kernel_repo)
    git(fake_kernel_repo, "commit", "-qam", "x")
    bad = tmp_path / "bad.patch"
    bad.write_text(make_patch(fake_kernel_repo, _edit_line(30, "Y"), "mm: bad"))
    git(fake_kernel_repo, "checkout", "-q", "master" if "master" in git(
        fake_kernel_repo, "branch") else "main")
    user_head = git(fake_kernel_repo, "rev-parse", "HEAD")
    user_status = git(fake_kernel_repo, "status", "--porcelain")
    r = Runner()
    t = tree.resolve(str(fake_kernel_repo), r)
    base = tree.resolve_base(t, "v6.1", r)
    wt = tree.prepare_worktree(t, base, r)
    series.apply(series.load(str(good)), wt, r, tmp_path / "apply.log", progress=lambda m: None)
    assert (wt / "mm/mmap.c").read_text().splitlines()[2] == "A"
    with pytest.raises(ApplyError) as ei:
        series.apply(series.load(str(bad)), wt, r, tmp_path / "apply.log",
                     progress=lambda m: None)
    msg = str(ei.value)
    assert "bad.patch" in msg and "mm/mmap.c" in msg and "hunk #1" in msg
    assert f"worktree kept at {wt}" in msg
    # The user's checkout is untouched: same HEAD, clean, no worktree registered.
    assert git(fake_kernel_repo, "rev-parse", "HEAD") == user_head
    assert git(fake_kernel_repo, "status", "--porcelain") == user_status
    assert "orch" not in git(fake_kernel_repo, "worktree", "list")
    # The next run resets the kept worktree.
    wt2 = tree.prepare_worktree(t, base, r)
    assert wt2 == wt and (wt / "mm/mmap.c").read_text().splitlines()[2] == "line 3"
    assert subprocess.run(["git", "-C", str(wt), "status", "--porcelain"], capture_output=True,
                          text=True).stdout == ""


def test_bad_base_and_not_a_kernel(tmp_path, fake_kernel_repo, isolated_cache, plain_repo):
    r = Runner()
    t = tree.resolve(str(fake_kernel_repo), r)
    with pytest.raises(UsageError, match="--base nope: no such commit"):
        tree.resolve_base(t, "nope", r)
    plain = plain_repo
    t2 = tree.resolve(str(plain), r)
    with pytest.raises(UsageError, match="not a kernel tree"):
        tree.resolve_base(t2, None, r)
    with pytest.raises(UsageError, match="not a git checkout or a kernel tarball"):
        tree.resolve(str(tmp_path / "plain" / "README"), r)


def test_git_env_of_a_calling_git_is_ignored(fake_kernel_repo, plain_repo, isolated_cache,
                                             monkeypatch):
    """Under `git bisect run` (or a hook) git exports GIT_DIR: orch must not follow it."""
    r = Runner()
    key = tree.resolve(str(fake_kernel_repo), r).key
    monkeypatch.setenv("GIT_DIR", str(plain_repo / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(plain_repo))
    t = tree.resolve(str(fake_kernel_repo), r)
    assert t.key == key
    base = tree.resolve_base(t, "v6.1", r)
    wt = tree.prepare_worktree(t, base, r)
    assert (wt / "mm/mmap.c").exists()
    assert git(plain_repo, "status", "--porcelain") == ""


def test_relative_series_path_becomes_absolute(tmp_path, fake_kernel_repo, monkeypatch):
    d = tmp_path / "s"
    d.mkdir()
    (d / "a.patch").write_text(make_patch(fake_kernel_repo, _edit_line(3, "A"), "mm: a"))
    (d / "series").write_text("a.patch\n")
    monkeypatch.chdir(tmp_path)
    for spec in ("s", "s/a.patch"):
        got = series.load(spec)
        assert got[0].path.is_absolute() and got[0].path == d / "a.patch"
