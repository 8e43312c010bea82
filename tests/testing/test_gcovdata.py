"""The guest side of --coverage (testing/gcovdata.py): what it runs on the machine, and how
the gcda files in the tar it brings back are matched to the profiled files. (The real
thing, on a real guest: tests/slow/test_coverage_slow.py.)"""

import subprocess

import pytest

from orchestrator.base.errors import InfraError, SSHError
from orchestrator.targets.ssh import CmdResult
from orchestrator.testing import gcovdata
from tests.support.fakes import FakeSession

BUILD = "root/.cache/orch/work/linux-x/.orch-build-x86_64-coverage"


class TarSession(FakeSession):
    def __init__(self, data: bytes, **kw):
        super().__init__(**kw)
        self.data = data

    def get(self, command: str, timeout: float = 120.0) -> bytes:
        self.ran.append(command)
        return self.data


def test_prepare_mounts_debugfs_and_says_why_when_there_is_no_gcov():
    ok = FakeSession([("mount -t debugfs", "gcov-ok\n")])
    assert gcovdata.prepare(ok) == ""
    assert "mount -t debugfs debugfs /sys/kernel/debug" in ok.ran[0]
    none = FakeSession([("mount", CmdResult(1, "", "", 0.0))])
    assert "not a coverage build (CONFIG_GCOV_KERNEL)" in gcovdata.prepare(none)


def test_gcda_files_are_matched_by_their_path_in_the_tree(tmp_path):
    tar = gcovdata.tar_of({f"{BUILD}/mm/userfaultfd.gcda": b"mm",
                           f"{BUILD}/fs/userfaultfd.gcda": b"fs",
                           f"{BUILD}/mm/rmap.gcda": b"rmap",
                           f"{BUILD}/kernel/other.gcda": b"x"})
    sess = TarSession(tar)
    path = gcovdata.collect(sess, tmp_path / "gcda" / "uffd_move.tar")
    assert "cat \"$f\"" in sess.ran[0] and "tar -C" in sess.ran[0]
    got = gcovdata.members(path, ["mm/userfaultfd.c", "fs/userfaultfd.c", "mm/rmap.c",
                                  "mm/mmap.c"])
    assert got == {"mm/userfaultfd.c": b"mm", "fs/userfaultfd.c": b"fs", "mm/rmap.c": b"rmap"}


def test_a_file_that_is_not_a_tar_is_one_error_of_the_coverage_stage(tmp_path):
    # the tar is on the host already: nothing of SSH's
    bad = tmp_path / "x.tar"
    bad.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InfraError, match="not a readable tar") as e:
        gcovdata.members(bad, ["mm/rmap.c"])
    assert not isinstance(e.value, SSHError) and e.value.stage == "coverage"
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("shell", [["sh"], ["busybox", "sh"]])
def test_the_collect_script_leaves_no_temporary_directory_when_it_fails(tmp_path, shell):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    script = gcovdata.COLLECT.replace(gcovdata.GCOV, str(tmp_path / "no-debugfs"))
    r = subprocess.run([*shell, "-c", script], capture_output=True,
                       env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp)})
    assert r.returncode != 0 and list(tmp.iterdir()) == []


def test_the_collect_script_reads_debugfs_like_files_with_cat(tmp_path):
    """COLLECT as a shell runs it, on a directory standing in for debugfs: every .gcda
    comes back, with its path, as one tar."""
    root = tmp_path / "gcov"
    (root / BUILD / "mm").mkdir(parents=True)
    (root / BUILD / "mm/rmap.gcda").write_bytes(b"\x00counts\xff")
    (root / BUILD / "mm/rmap.gcno").write_bytes(b"notes")  # a link in debugfs: not taken
    script = gcovdata.COLLECT.replace(gcovdata.GCOV, str(root))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp)}).stdout
    assert list(tmp.iterdir()) == []
    (tmp_path / "c.tar").write_bytes(out)
    assert gcovdata.members(tmp_path / "c.tar", ["mm/rmap.c"]) == {"mm/rmap.c":
                                                                    b"\x00counts\xff"}
