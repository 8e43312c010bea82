"""One binary's run (testrun.run_binary) on a fake SSH session: KTAP programs as before, a
program without KTAP judged by kselftest's exit codes, a program with a registered text
format (uffd-unit-tests) as one testcase per line."""

import pytest

from orchestrator.targets.ssh import CmdResult
from orchestrator.testing import lostmachine, testrun
from orchestrator.testing.lostmachine import CRASH, Lost
from tests.support.fakes import FakeSession


@pytest.fixture
def run(tmp_path):
    def do(stdout, code=0, stderr="", name="prog", timed_out=False, lost=False, timeout=45):
        res = CmdResult(code, stdout, stderr, 0.1, timed_out=timed_out, lost=lost)
        ses = FakeSession([("timeout -s KILL", res)])
        return testrun.run_binary(ses, "x86_64", name, timeout, tmp_path / "out")
    return do


def cases(suite):
    return [(c.name, c.status, c.kind) for c in suite.cases]


# --- KTAP programs: today's behaviour, pinned -------------------------------------------

def test_ktap_program_unchanged(run):
    s = run("KTAP version 1\n1..2\nok 1 a\n# got 3, expected 1\nnot ok 2 b\n", code=1)
    assert cases(s) == [("a", "pass", "ktap"), ("b", "fail", "ktap"),
                        ("dmesg_clean", "pass", "dmesg_clean")]
    assert s.cases[1].message == "got 3, expected 1"


@pytest.mark.parametrize("code", [1, 3, 5, 139])
def test_ktap_program_exiting_nonzero_without_a_failure_is_an_error(run, code):
    s = run("KTAP version 1\n1..1\nok 1 a\n", code=code)
    assert cases(s)[1] == ("exit_status", "error", "exit_status")


@pytest.mark.parametrize("out", ["KTAP version 1\n1..0 # SKIP soft-dirty is not support\n",
                                 "KTAP version 1\n1..1\nok 1 a # SKIP no THP\n"])
def test_ktap_program_exiting_4_after_skipping_is_a_skip_not_an_error(run, out):
    s = run(out, code=4)  # kselftest's ksft_exit_skip
    assert [c[1] for c in cases(s)] == ["skip", "pass"]  # the skip, dmesg_clean


def test_ktap_program_exiting_2_xfail_is_no_error(run):
    s = run("KTAP version 1\n1..1\nok 1 a # XFAIL known\n", code=2)
    assert [c[:2] for c in cases(s)] == [("a", "pass"), ("dmesg_clean", "pass")]


def test_ktap_header_without_results_is_still_no_ktap(run):
    s = run("KTAP version 1\n", code=0)
    assert cases(s)[0] == ("prog", "error", "no_ktap")
    assert s.cases[0].message == "no KTAP output (exit 0)"


def test_ktap_program_cut_off_by_timeout(run):
    s = run("KTAP version 1\n1..2\nok 1 a\n", code=None, timed_out=True)
    assert cases(s) == [("a", "pass", "ktap"), ("test_2", "error", "missing"),
                        ("timeout", "error", "timeout"), ("dmesg_clean", "pass", "dmesg_clean")]


# --- programs without KTAP: kselftest's exit codes --------------------------------------

@pytest.mark.parametrize("code,status,says", [
    (0, "pass", ""),
    (1, "fail", "exit 1 (KSFT_FAIL)"),
    (2, "pass", "xfail: exit 2 (KSFT_XFAIL)"),
    (3, "fail", "xpass: exit 3 (KSFT_XPASS)"),
    (4, "skip", "exit 4 (KSFT_SKIP)"),
    (139, "fail", "killed by signal 11 (SIGSEGV)"),
    (7, "fail", "exit 7 (not a kselftest code)"),
    (127, "error", "exit 127 (the shell could not run it)"),
])
def test_program_without_ktap_gets_the_verdict_of_its_exit_code(run, code, status, says):
    s = run("checking things\nall good here\n", code=code)
    assert cases(s) == [("prog", status, "exit_code"), ("dmesg_clean", "pass", "dmesg_clean")]
    assert s.cases[0].message.startswith(says)
    assert s.cases[0].diagnostics == ["checking things", "all good here"]


def test_exit_code_case_message_carries_the_failing_line_or_skip_reason(run):
    s = run("step 1\nmismatch: got 2 VMAs\nbye\n", code=1)
    assert s.cases[0].message == "exit 1 (KSFT_FAIL): mismatch: got 2 VMAs"
    s = run("Userfaultfd not supported or unprivileged, skip all tests\n", code=4)
    assert s.cases[0].message == ("exit 4 (KSFT_SKIP): Userfaultfd not supported or "
                                  "unprivileged, skip all tests")


def test_exit_code_case_keeps_stderr_in_its_detail(run):
    s = run("", code=1, stderr="ERROR: open pagemap (errno=2)\n")
    assert s.cases[0].status == "fail"
    assert s.cases[0].diagnostics == ["ERROR: open pagemap (errno=2)"]
    assert s.cases[0].message == "exit 1 (KSFT_FAIL): ERROR: open pagemap (errno=2)"


def test_program_without_ktap_that_hangs_is_a_timeout_as_before(run):
    s = run("waiting...\n", code=None, timed_out=True)
    assert cases(s) == [("timeout", "error", "timeout"), ("dmesg_clean", "pass", "dmesg_clean")]


def test_program_without_ktap_that_loses_the_machine_is_judged_by_lostmachine(run):
    s = run("waiting...\n", code=None, lost=True)
    assert cases(s) == [("ssh", "error", "ssh")]
    lostmachine.reclassify(s, Lost(CRASH, "kernel crashed during prog: Oops"))
    assert cases(s) == [("kernel_crash", "fail", "crash")]


def test_exit_code_case_gets_the_binary_time_in_the_record(run):
    s = run("fine\n", code=0)
    s.duration = 2.5
    tc = testrun.record_cases("cell", s, "selftests/prog.c", {})[0]
    assert (tc.name, tc.kind, tc.duration, tc.duration_source) == ("prog", "exit_code", 2.5,
                                                                  "orch")


# --- nested KTAP -------------------------------------------------------------------------

def test_nested_ktap_program_lists_its_subtests(run):
    s = run("KTAP version 1\n1..2\n  KTAP version 1\n  1..1\n  ok 1 inner\nok 1 outer\n"
            "  KTAP version 1\n  # Subtest: second\n  1..2\n  ok 1 x\n", code=None,
            timed_out=True)
    assert cases(s) == [("outer", "pass", "ktap"), ("outer.inner", "pass", "ktap"),
                        ("second", "error", "missing"), ("second.x", "pass", "ktap"),
                        ("second.test_2", "error", "missing"), ("timeout", "error", "timeout"),
                        ("dmesg_clean", "pass", "dmesg_clean")]
    assert s.cases[2].message == "did not report: test binary killed after 45s timeout"


# --- kselftest programs: suite name, program file name, arguments, runner formats ---------

def _ks_run(tmp_path, stdout, code=0, program="run_vmtests.sh", args=()):
    res = CmdResult(code, stdout, "", 0.1)
    ses = FakeSession([("timeout -s KILL", res)])
    s = testrun.run_binary(ses, "x86_64", f"kselftest.mm.{program}", 180, tmp_path / "out",
                           path=f"/opt/orch/kselftest/mm/{program}",
                           cwd="/opt/orch/kselftest/mm", args=args, program=program)
    return s, ses


def test_kselftest_program_runs_in_its_dir_with_its_arguments(tmp_path):
    s, ses = _ks_run(tmp_path, "", program="uffd-stress", args=("anon", "20", "16"))
    cmd = next(c for c in ses.ran if "timeout -s KILL" in c)
    assert cmd == ("cd /opt/orch/kselftest/mm && timeout -s KILL 180 "
                   "/opt/orch/kselftest/mm/uffd-stress anon 20 16")
    assert s.name == "x86_64.kselftest.mm.uffd-stress"
    assert cases(s)[0] == ("kselftest.mm.uffd-stress", "pass", "exit_code")


def test_kselftest_text_format_is_found_by_program_file_name(tmp_path):
    s, _ = _ks_run(tmp_path, "Testing move on anon... done\nTesting move on shmem... "
                   "skipped [reason: feature missing]\n", program="uffd-unit-tests")
    assert cases(s)[:2] == [("move.anon", "pass", "text"), ("move.shmem", "skip", "text")]


RUN_VMTESTS_61 = """\
---------------------
running ./madv_populate
---------------------
TAP version 13
1..2
ok 1 populate read
ok 2 populate write
[PASS]
-----------------------
running ./userfaultfd anon 20 16
-----------------------
bounces: 3, mode: rnd racing
[FAIL]
"""


def test_61_run_vmtests_is_read_by_its_text_format_despite_nested_tap(tmp_path):
    s, _ = _ks_run(tmp_path, RUN_VMTESTS_61, code=1)
    assert cases(s)[:2] == [("madv_populate", "pass", "text"),
                            ("userfaultfd_anon_20_16", "fail", "text")]


def test_612_run_vmtests_prints_tap_and_is_read_as_ktap(tmp_path):
    out = ("TAP version 13\n# -----\n# running ./uffd-unit-tests\n# -----\n"
           "# Testing move on anon... done\n# [PASS]\nok 1 uffd-unit-tests\n"
           "# [SKIP]\nok 2 hugepage-mmap # SKIP\n1..2\n")
    s, _ = _ks_run(tmp_path, out)
    assert cases(s)[:2] == [("uffd-unit-tests", "pass", "ktap"),
                            ("hugepage-mmap", "skip", "ktap")]
