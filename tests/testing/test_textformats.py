"""Programs with their own text format (textformats): uffd-unit-tests' `Testing NAME on
MEM... done|skipped [reason: R]|failed [reason: R]` lines, one testcase per line, alone
and through suite.run_binary (cut off by a hang, a lost machine, a dying program)."""

import re
from pathlib import Path

import pytest

from orchestrator.targets.ssh import CmdResult
from orchestrator.testing import lostmachine, testrun, textformats
from tests.support.fakes import FakeSession

# As 6.12's uffd-unit-tests prints it on a kernel without UFFD_FEATURE_MOVE (6.1).
UFFD_61 = """\
Testing UFFDIO_API (with syscall)... done
Testing UFFDIO_API (with /dev/userfaultfd)... skipped [reason: cannot open userfaultfd handle]
Testing register-ioctls on anon... done
Testing register-ioctls on shmem... done
Testing zeropage on anon... done
Testing zeropage on hugetlb... skipped [reason: huge page size is 0, feature missing?]
Testing wp-fork on anon... failed [reason: Detected missing uffd-wp bit in child in present pte]
Testing move on anon... skipped [reason: feature missing]
Testing move-pmd on anon... skipped [reason: feature missing]
Testing move-pmd-split on anon... skipped [reason: feature missing]
Testing minor on shmem-private... done
Userfaults unit tests: pass=5, skip=6, fail=1 (total=12)
"""

UFFD = textformats.lookup("uffd-unit-tests")


def render(cases):
    return "".join(f"{c.name}\t{c.status}\t{c.kind}\t{c.message}\n" for c in cases)


def test_every_test_line_is_one_testcase(golden):
    p = textformats.parse(UFFD, UFFD_61)
    assert p.unfinished is None
    golden("uffd-unit-tests-6.1.cases", render(p.results))


def test_names_are_test_dot_memory_type():
    p = textformats.parse(UFFD, UFFD_61)
    names = [c.name for c in p.results]
    assert names[:3] == ["UFFDIO_API_with_syscall", "UFFDIO_API_with_dev_userfaultfd",
                         "register-ioctls.anon"]
    assert "move-pmd-split.anon" in names and "minor.shmem-private" in names
    assert len(set(names)) == len(names)
    assert [c.number for c in p.results] == list(range(1, 12))


def test_statuses_and_reasons():
    by = {c.name: c for c in textformats.parse(UFFD, UFFD_61).results}
    assert (by["move.anon"].status, by["move.anon"].message) == ("skip", "feature missing")
    assert by["zeropage.hugetlb"].message == "huge page size is 0, feature missing?"
    assert by["wp-fork.anon"].status == "fail"
    assert by["wp-fork.anon"].message == "Detected missing uffd-wp bit in child in present pte"
    assert (by["zeropage.anon"].status, by["zeropage.anon"].message) == ("pass", "")


def test_outcome_on_a_later_line_and_lines_in_between():
    p = textformats.parse(UFFD, "Testing sigbus on anon... \nsome noise\ndone\n"
                                "Testing events on anon... failed\n")
    assert [(c.name, c.status, c.diagnostics) for c in p.results] == [
        ("sigbus.anon", "pass", ["some noise"]), ("events.anon", "fail", [])]
    assert p.results[1].message == "failed"


def test_a_line_cut_off_is_left_unfinished():
    p = textformats.parse(UFFD, "Testing move on anon... done\nTesting move-pmd on anon... ")
    assert [c.name for c in p.results] == ["move.anon"]
    assert (p.unfinished.name, p.unfinished.status) == ("move-pmd.anon", "error")


def test_a_test_started_before_the_last_one_ended():
    p = textformats.parse(UFFD, "Testing a on anon... Testing b on anon... done\n")
    assert [(c.name, c.status) for c in p.results] == [("a.anon", "error"), ("b.anon", "pass")]


def test_lookup_by_program_file_name():
    assert textformats.lookup("/opt/kselftests/mm/uffd-unit-tests") is UFFD
    assert textformats.lookup("uffd-stress") is None
    assert set(textformats.FORMATS) == {"uffd-unit-tests", "run_vmtests.sh"}


# --- through run_binary ------------------------------------------------------------------

@pytest.fixture
def run(tmp_path):
    def do(stdout, code=0, stderr="", timed_out=False, lost=False):
        res = CmdResult(code, stdout, stderr, 0.1, timed_out=timed_out, lost=lost)
        ses = FakeSession([("timeout -s KILL", res)])
        return testrun.run_binary(ses, "x86_64", "uffd-unit-tests", 180, tmp_path / "out")
    return do


def cases(suite):
    return [(c.name, c.status, c.kind) for c in suite.cases]


def test_run_gives_one_testcase_per_line(run):
    s = run(UFFD_61, code=1)
    assert len(s.cases) == 12  # 11 lines and dmesg_clean: the failing line explains exit 1
    assert s.cases[-1].name == "dmesg_clean"
    assert {c.kind for c in s.cases[:-1]} == {"text"}


def test_run_all_skipped_exits_4(run):
    s = run("Testing move on anon... skipped [reason: feature missing]\n", code=4)
    assert cases(s) == [("move.anon", "skip", "text"), ("dmesg_clean", "pass", "dmesg_clean")]


def test_run_exit_1_without_a_failed_line_is_an_exit_status_error(run):
    s = run("Testing move on anon... done\n", code=1)
    assert cases(s)[1] == ("exit_status", "error", "exit_status")
    assert s.cases[1].message == ("uffd-unit-tests ended with exit 1 (KSFT_FAIL), without "
                                  "reporting a failing test")


def test_run_program_dying_in_a_test_fails_that_test(run):
    s = run("Testing move on anon... done\nTesting move-pmd on anon... ", code=1,
            stderr="ERROR: UFFDIO_MOVE (errno=22, @uffd-unit-tests.c:1100)\n")
    assert cases(s) == [("move.anon", "pass", "text"), ("move-pmd.anon", "fail", "text"),
                        ("dmesg_clean", "pass", "dmesg_clean")]
    assert s.cases[1].message == ("did not finish: exit 1 (KSFT_FAIL): ERROR: UFFDIO_MOVE "
                                  "(errno=22, @uffd-unit-tests.c:1100)")


def test_run_hung_in_a_test(run):
    s = run("Testing move on anon... done\nTesting move-pmd on anon... ", code=None,
            timed_out=True)
    assert cases(s) == [("move.anon", "pass", "text"), ("move-pmd.anon", "error", "text"),
                        ("timeout", "error", "timeout"), ("dmesg_clean", "pass", "dmesg_clean")]
    assert s.cases[1].message == "did not finish: uffd-unit-tests killed after 180s timeout"


def test_run_kernel_crash_in_a_test(run):
    s = run("Testing move on anon... done\nTesting move-pmd on anon... ", code=None,
            lost=True)
    assert cases(s) == [("move.anon", "pass", "text"), ("move-pmd.anon", "error", "text"),
                        ("ssh", "error", "ssh")]
    lostmachine.reclassify(
        s, lostmachine.Lost(lostmachine.CRASH, "kernel crashed during uffd-unit-tests"))
    assert cases(s) == [("move.anon", "pass", "text"), ("move-pmd.anon", "fail", "text"),
                        ("kernel_crash", "fail", "crash")]


def test_run_without_any_test_line_falls_back_to_the_exit_code(run):
    s = run("Userfaultfd not supported or unprivileged, skip all tests\n", code=4)
    assert cases(s) == [("uffd-unit-tests", "skip", "exit_code"),
                        ("dmesg_clean", "pass", "dmesg_clean")]


def test_text_cases_share_the_binary_time(run):
    s = run("Testing a on anon... done\nTesting b on anon... done\n")
    s.duration = 3.0
    tcs = testrun.record_cases("cell", s, "", {})
    assert [(t.duration, t.duration_source) for t in tcs[:2]] == [(1.5, "binary-split")] * 2


# Real output: 6.12's uffd-unit-tests built from /usr/src/linux-source-6.12 and run on a
# 6.18 host without hugetlb pages or CONFIG_GUP_TEST (the move tests pass there).
REAL = (Path(__file__).parent / "data" / "uffd-unit-tests-6.12.out").read_text()


def test_real_output_one_testcase_per_test_line(golden):
    p = textformats.parse(UFFD, REAL)
    total = int(re.search(r"total=(\d+)", REAL).group(1))
    assert len(p.results) == total == REAL.count("Testing ") == 66
    assert p.unfinished is None
    assert len({c.name for c in p.results}) == total
    by = {c.name: c.status for c in p.results}
    assert [by[f"{t}.anon"] for t in ("move", "move-pmd", "move-pmd-split")] == ["pass"] * 3
    golden("uffd-unit-tests-6.12.cases", render(p.results))
