"""Crash triage logic: frames to file:line (through the tree's scripts/faddr2line, here a
stand-in that prints its format), each line to the patch that wrote it (git blame), and the
summary a failure message leads with."""

from pathlib import Path

from orchestrator.base.runner import Runner
from orchestrator.testing import ktap, reports, triage
from orchestrator.testing.testrun import Suite
from tests.support.host import git

DATA = Path(__file__).parent / "data"
# What the kernel's faddr2line prints (paths relative; an object ccache compiled in another
# worktree names that one's build dir).
FADDR2LINE = r"""#!/bin/bash
shift
for s in "$@"; do
  case $s in
  move_pages_pte+0x5c/0x6a0|move_pages_pte+0x66/0x6a0)
    echo "$s:"; echo "folio_test_anon at include/linux/page-flags.h:3"
    echo "(inlined by) move_pages_pte at mm/userfaultfd.c:12";;
  uffd_move_pages+0x1f4/0x380)
    echo "$s:"; echo "uffd_move_pages at ../mm/userfaultfd.c:4";;
  userfaultfd_ioctl+0x8b9/0x1730)
    echo "$s:"; echo "userfaultfd_ioctl at /else/wt/.orch-build-x86_64/../fs/userfaultfd.c:2";;
  *) echo "skipping $s address due to size mismatch";;
  esac
done
"""


def tree(tmp_path):
    """base (upstream), then two patches as commits, as `git am` leaves them."""
    repo = tmp_path / "linux"
    for d in ("mm", "fs", "include/linux", "scripts"):
        (repo / d).mkdir(parents=True, exist_ok=True)
    (repo / "mm/userfaultfd.c").write_text("".join(f"up {i}\n" for i in range(1, 11)))
    (repo / "fs/userfaultfd.c").write_text("up 1\nup 2\n")
    (repo / "include/linux/page-flags.h").write_text("up 1\nup 2\nup 3\n")
    (repo / "scripts/faddr2line").write_text(FADDR2LINE)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    text = (repo / "mm/userfaultfd.c").read_text().replace("up 4\n", "patched 4\n")
    (repo / "mm/userfaultfd.c").write_text(text)
    git(repo, "commit", "-qam", "mm/userfaultfd: add uffd_move_pages")
    with open(repo / "mm/userfaultfd.c", "a") as f:
        f.write("new 11\nnew 12\n")
    git(repo, "commit", "-qam", "mm/userfaultfd: crash on the move path")
    head = git(repo, "rev-parse", "HEAD").strip()
    return repo, base, head


def source(tmp_path):
    repo, base, head = tree(tmp_path)
    names = ["0001-mm-userfaultfd-add-uffd_move_pages", "0002-crash"]
    src = triage.Source(repo / ".git", head, vmlinux=tmp_path / "vmlinux")
    src.patches = triage.patch_commits(src.repo, base, head, names, Runner())
    assert list(src.patches.values()) == names
    return src


def test_frames_get_file_line_and_the_patch_that_wrote_the_line(tmp_path):
    src = source(tmp_path)
    warn, oops = reports.parse((DATA / "x86_warn_null.log").read_text())
    triage.decode([warn, oops], src, Runner())
    site, caller, ioctl = oops.frames[:3]
    # Inlined from an upstream header, in a line the second patch added: that line.
    assert (site.file, site.line, site.patch) == ("mm/userfaultfd.c", 12, "0002-crash")
    assert site.inlined == [{"function": "move_pages_pte", "file": "mm/userfaultfd.c",
                             "line": 12}]
    assert (caller.file, caller.line, caller.patch) == (
        "mm/userfaultfd.c", 4, "0001-mm-userfaultfd-add-uffd_move_pages")
    assert (ioctl.file, ioctl.line, ioctl.patch) == ("fs/userfaultfd.c", 2, "")
    assert triage.summary(oops) == ("BUG: kernel NULL pointer dereference in move_pages_pte "
                                    "(mm/userfaultfd.c:12, patch 0002-crash)")
    # A WARNING's own file:line (no debug info needed): mm/userfaultfd.c:1087 is past
    # the end of this little file, so no patch; its caller is in one.
    assert triage.summary(warn) == (
        "WARNING in move_pages_pte (mm/userfaultfd.c:1087; via move_pages_pte "
        "mm/userfaultfd.c:12, patch 0002-crash)")


def test_without_debug_info_frames_keep_their_function(tmp_path):
    src = source(tmp_path)
    src.vmlinux = None
    (oops,) = reports.parse((DATA / "x86_warn_null.log").read_text())[1:]
    triage.decode([oops], src, Runner())
    assert not any(f.file for f in oops.frames)
    assert triage.summary(oops) == ("BUG: kernel NULL pointer dereference in move_pages_pte "
                                    "(move_pages_pte: no debug info for file:line)")


def test_a_failing_dmesg_clean_gets_records_and_a_message_that_leads_with_the_summary(
        tmp_path):
    src = source(tmp_path)
    s = Suite("x86_64", "crash")
    s.dmesg = (DATA / "x86_warn_null.log").read_text()
    s.cases = [ktap.TestResult("before", "pass"),
               ktap.TestResult("dmesg_clean", "fail", kind="dmesg_clean",
                               message="kernel reported during crash: WARNING: ...")]
    assert triage.triage_suite(s, src, Runner()) == 2
    case = s.cases[1]
    assert case.message.startswith("WARNING in move_pages_pte (mm/userfaultfd.c:1087; ")
    assert case.message.endswith(" (+1 more); kernel reported during crash: WARNING: ...")
    kinds = [(r["kind"], r["title"]) for r in case.reports]
    assert kinds == [("warning", "WARNING in move_pages_pte"),
                     ("oops", "BUG: kernel NULL pointer dereference in move_pages_pte")]
    assert case.reports[1]["frames"][0]["patch"] == "0002-crash"
    assert s.cases[0].reports == []


def test_patch_names_need_one_commit_per_patch(tmp_path):
    repo, base, head = tree(tmp_path)
    assert triage.patch_commits(repo / ".git", base, head, ["only-one"], Runner()) == {}
    assert triage.touched(repo / ".git", base, head, Runner()) == {"mm/userfaultfd.c"}
