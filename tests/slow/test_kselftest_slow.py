"""The kernel's own selftests on real kernels: 6.12's mm (uffd-unit-tests, upstream's move
tests) built by its own Makefiles for both arches, run on 6.12 itself, on the 6.1
prototype and on bare 6.1; compare of the last two; 6.1's own vm collection; a kselftest
that fails, one that hangs past its timeout, and one that crashes the kernel.

uffd-unit-tests runs with `-f move` here (its own filter: move, move-pmd, move-pmd-split),
to keep the slow tier short: the whole program takes about half a minute per arch on a
quiet machine, but minutes on a loaded one (README, "The kernel's own selftests"); the
default plan runs all of it. The kernels are the ones the other slow tests use (6.1 +
series and 6.12 on both arches, bare 6.1 on x86_64).
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.host import git
from tests.support.orch import orch as run_orch

pytestmark = pytest.mark.slow

MOVE = "mm:uffd-unit-tests -f move"
SUITE = "kselftest.mm.uffd-unit-tests_-f_move"
MOVE_CASES = {"move.anon", "move-pmd.anon", "move-pmd-split.anon"}
# wp-fork-pin and wp-fork-pin-with-event on every memory type: the guest's huge pages
# (reserved by its init) and gup_test (GUP_TEST, debugfs mounted by the init).
PIN = "mm:uffd-unit-tests -f wp-fork-pin"
PIN_SUITE = "kselftest.mm.uffd-unit-tests_-f_wp-fork-pin"
PIN_CASES = {f"{t}.{m}" for t in ("wp-fork-pin", "wp-fork-pin-with-event")
             for m in ("anon", "shmem", "shmem-private", "hugetlb", "hugetlb-private")}
BOTH = "x86_64,arm64"


def orch(*args, timeout=3600):
    return run_orch(*args, timeout=timeout)


def cases(out: Path, binary: str) -> dict[tuple[str, str], dict]:
    """(arch, testcase name) -> the record's testcase, for one suite."""
    rec = json.loads((out / "results.json").read_text())
    arch_of = {c["id"]: c["arch"] for c in rec["cells"]}
    return {(arch_of[t["cell"]], t["name"]): t for t in rec["tests"] if t["binary"] == binary}


def run(tmp_path_factory, name: str, *args: str) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp(name)
    return out, orch("run", "-o", str(out), *args)


@pytest.fixture(scope="module")
def on_612(tmp_path_factory):
    return run(tmp_path_factory, "ks612", "--tree", "linux-6.12", "--series", "none",
               "--test", "uffd_move_probe", "--kselftest", MOVE, "--kselftest", PIN,
               "--arch", BOTH)


@pytest.fixture(scope="module")
def on_61_series(tmp_path_factory):
    return run(tmp_path_factory, "ks61s", "--kselftest-tree", "linux-6.12",
               "--test", "uffd_move_probe", "--kselftest", MOVE, "--arch", BOTH)


@pytest.fixture(scope="module")
def on_61_bare(tmp_path_factory):
    return run(tmp_path_factory, "ks61n", "--series", "none", "--kselftest-tree",
               "linux-6.12", "--test", "uffd_move_probe", "--kselftest", MOVE,
               "--arch", "x86_64")


def test_612_one_testcase_per_testing_line_and_move_tests_pass(on_612):
    out, r = on_612
    assert r.returncode == 0, r.stderr[-3000:]
    got = cases(out, SUITE)
    for arch in ("x86_64", "arm64"):
        text = (out / arch / "tests" / f"{SUITE}.ktap").read_text()
        lines = re.findall(r"^Testing (\S+) on (\S+)\.\.\.", text, re.M)
        assert {f"{t}.{m}" for t, m in lines} >= MOVE_CASES
        mine = {n: t for (a, n), t in got.items() if a == arch and t["kind"] == "text"}
        assert sorted(mine) == sorted(f"{t}.{m}" for t, m in lines)  # one per line
        for n in MOVE_CASES:
            assert mine[n]["status"] == "pass", (arch, n, mine[n]["message"])
        assert got[(arch, "dmesg_clean")]["status"] == "pass"
    junit = (out / "junit.xml").read_text()
    assert 'name="x86_64.linux-6.12.none.default.qemu.kselftest.mm.uffd-unit-tests_-f_move"' \
        in junit
    meta = json.loads((out / "metadata.json").read_text())["inputs"]["kselftest"]
    assert meta["requests"] == [MOVE, PIN]
    for arch in ("x86_64", "arm64"):
        b = meta["builds"][arch]
        assert b["tree"] == "linux-6.12" and b["collections"] == ["mm"]
        assert b["headers"].startswith("own uAPI headers of the kselftest tree (6.12): "
                                       f"make headers ARCH={arch},"), b["headers"]


def test_612_hugetlb_and_gup_test_cases_run(on_612):
    """configs/selftests.config (HUGETLBFS, DEBUG_FS, GUP_TEST) and the guest's init (huge
    pages, debugfs): 6.12's pinning cases run on every memory type, hugetlb included.
    Before them, the hugetlb ones skipped ("huge page size is 0", then "memory allocation
    failed") and the others "Possibly CONFIG_GUP_TEST missing or unprivileged"."""
    out, r = on_612
    assert r.returncode == 0, r.stderr[-3000:]
    got = cases(out, PIN_SUITE)
    for arch in ("x86_64", "arm64"):
        for n in sorted(PIN_CASES):
            assert got[(arch, n)]["status"] == "pass", (arch, n, got[(arch, n)]["message"])


def test_61_prototype_passes_upstreams_move_tests(on_61_series):
    out, r = on_61_series
    assert r.returncode == 0, r.stderr[-3000:]
    got = cases(out, SUITE)
    for arch in ("x86_64", "arm64"):
        for n in MOVE_CASES:
            assert got[(arch, n)]["status"] == "pass", (arch, n, got[(arch, n)]["message"])
    # the kselftests of another tree are its own business: the source file says which
    assert got[("x86_64", "move.anon")]["file"] == \
        "linux-6.12:tools/testing/selftests/mm/uffd-unit-tests.c"


def test_bare_61_skips_the_move_tests_and_compare_calls_them_fixes(on_61_bare,
                                                                   on_61_series, tmp_path):
    out, r = on_61_bare
    assert r.returncode == 0, r.stderr[-3000:]
    got = cases(out, SUITE)
    for n in MOVE_CASES:
        t = got[("x86_64", n)]
        assert t["status"] == "skip" and "feature missing" in t["message"], t
    c = orch("compare", str(out), str(on_61_series[0]), "-o", str(tmp_path))
    assert c.returncode == 0, c.stdout + c.stderr
    changes = json.loads((tmp_path / "compare.json").read_text())["changes"]
    moved = {ch["name"]: ch["cls"] for ch in changes
             if ch["binary"] == SUITE and ch["new_cell"].startswith("x86_64")}
    assert {n: moved[n] for n in MOVE_CASES} == {n: "fix" for n in MOVE_CASES}


def test_kselftest_that_fails_and_one_that_hangs(on_612, tmp_path):
    """A program's exit 1 is a failure (kselftest's convention); one that outlives its
    timeout (--kselftest-timeout) is a timeout error, and the run goes on after it."""
    out = tmp_path / "o"
    r = orch("run", "-o", str(out), "--tree", "linux-6.12", "--series", "none",
             "--selftests", "none", "--arch", "x86_64", "--kselftest-timeout", "5",
             # all of it (67 cases with the hugetlb config) takes about 40 s on a quiet
             # machine: killed inside one of its first cases. A longer timeout reached
             # events.anon, which once failed on 6.12 under load (UFFDIO_COPY ENOENT)
             # and so exited 1 before the timeout.
             "--kselftest", "mm:uffd-unit-tests",
             "--kselftest", "mm:uffd-stress nonsense 1 1")  # bad arguments: exit 1
    assert r.returncode == 1, r.stderr[-3000:]
    hung = cases(out, "kselftest.mm.uffd-unit-tests")
    assert hung[("x86_64", "timeout")]["status"] == "error"
    assert hung[("x86_64", "timeout")]["kind"] == "timeout"
    assert "killed after 5s" in hung[("x86_64", "timeout")]["message"]
    # the test it was in when killed is an error; which one depends on the machine's
    # speed
    cut = [(n, t) for (a, n), t in hung.items()
           if (t.get("message") or "").startswith("did not finish:")]
    assert len(cut) == 1, hung
    name, t = cut[0]
    assert t["status"] == "error", t
    assert "killed after 5s timeout" in t["message"]
    failed = cases(out, "kselftest.mm.uffd-stress_nonsense_1_1")
    t = failed[("x86_64", "kselftest.mm.uffd-stress_nonsense_1_1")]
    assert (t["status"], t["kind"]) == ("fail", "exit_code")
    assert t["message"].startswith("exit 1 (KSFT_FAIL)")


def test_61s_own_vm_collection_runs_as_its_runner_does(tmp_path):
    """`--kselftest vm` on 6.1: the programs of vm's kselftest-list.txt (run_vmtests.sh),
    with vm's settings timeout; what could not be built is listed, as skips."""
    out = tmp_path / "o"
    r = orch("run", "-o", str(out), "--selftests", "none", "--arch", "x86_64",
             "--kselftest", "vm")
    assert r.returncode in (0, 1), r.stderr[-3000:]
    rec = json.loads((out / "results.json").read_text())
    suites = {t["binary"] for t in rec["tests"]}
    assert "kselftest.vm.run_vmtests.sh" in suites
    meta = json.loads((out / "metadata.json").read_text())["inputs"]["kselftest"]
    build = meta["builds"]["x86_64"]
    assert build["tree"] == "linux-6.1" and build["collections"] == ["vm"]
    for key, why in build["unbuilt"].items():
        prog = key.split(":", 1)[1]
        skipped = [t for t in rec["tests"] if t["binary"] == f"kselftest.vm.{prog}"]
        if skipped:
            assert skipped[0]["status"] == "skip" and why in skipped[0]["message"]


CRASH_MAKEFILE = "TEST_PROGS := crash.sh\n\ninclude ../lib.mk\n"
CRASH_SH = """#!/bin/sh
# A kselftest that crashes the kernel (CONFIG_MAGIC_SYSRQ=y is in configs/base.config).
echo "orch-crash: crashing the kernel now"
echo c > /proc/sysrq-trigger
sleep 60
"""


def test_kselftest_that_crashes_the_kernel(tmp_path):
    """A kselftest tree that is a user's checkout (6.12 plus a commit adding a collection
    whose one program crashes the kernel): the crash is the program's failure,
    `kernel_crash`, with the console excerpt; exit 1, as for orch's own tests."""
    from orchestrator.base.runner import Runner
    from orchestrator.kernel import tree as treemod

    src = treemod.resolve("linux-6.12", Runner())
    checkout = tmp_path / "linux"
    git(tmp_path, "clone", "-q", "--shared", str(src.repo), str(checkout))
    coll = checkout / "tools/testing/selftests/orch_crash"
    coll.mkdir()
    (coll / "Makefile").write_text(CRASH_MAKEFILE)
    (coll / "crash.sh").write_text(CRASH_SH)
    (coll / "crash.sh").chmod(0o755)
    git(checkout, "add", "-f", "-A")  # the tarball import ignores everything
    git(checkout, "commit", "-qm", "selftests: a collection that crashes the kernel")
    out = tmp_path / "o"
    r = orch("run", "-o", str(out), "--arch", "x86_64", "--test", "uffd_move_probe",
             "--kselftest-tree", str(checkout), "--kselftest", "orch_crash")
    assert r.returncode == 1, r.stderr[-3000:]
    got = cases(out, "kselftest.orch_crash.crash.sh")
    crash = got[("x86_64", "kernel_crash")]
    assert crash["status"] == "fail" and crash["kind"] == "crash", crash
    assert "sysrq" in crash["output"].lower() or "sysrq" in crash["message"].lower()
    probe = cases(out, "uffd_move_probe")  # ran before it: keeps its verdicts
    assert probe[("x86_64", "uffd_feature_move")]["status"] == "pass"
