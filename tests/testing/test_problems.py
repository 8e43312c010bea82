"""One table of kernel problems (kernel/problems.py), and every consumer fails on every
kind in it: dmesg_clean over SSH (testing/testrun.py) and in the LAVA guest (its test script
runs busybox's `grep -E`, as the guest does), the console's crash line of a lost QEMU guest
(targets/qemu.py) and of a LAVA job (targets/lava/log.py, testing/lavaresults.py), and the
report parser (testing/reports.py)."""

import io
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.kernel import arch, problems
from orchestrator.targets import qemu
from orchestrator.targets.lava import guest as lavaguest
from orchestrator.targets.lava.log import LavaOutcome
from orchestrator.testing import lavaresults, reports, testrun

EXAMPLES = [(p.kind, ex) for p in problems.PROBLEMS for ex in p.examples]
QUIET = ["random: crng init done", "orch: begin uffd_move 0123456789ab",
         "virtio_net virtio0 eth0: renamed", "Testing move on anon... done",
         "audit: type=1400 audit(0.0:2): apparmor=\"STATUS\"", "Run /init as init process",
         "orch-guest-ready 6.1.192"]
BUSYBOX = "/bin/busybox"  # busybox-static (ci/setup.sh): the guest's grep
ID = [f"{k}:{ex[:40]}" for k, ex in EXAMPLES]


def printk(line: str) -> str:
    return f"[   12.345678] {line}"


def test_the_table_holds_every_kind_the_parser_knows():
    assert set(problems.KINDS) == {kind for kind, _ in reports.HEADERS}
    assert {"ubsan", "hung_task", "rcu_stall", "lockdep"} <= set(problems.KINDS)
    assert all(p.examples for p in problems.PROBLEMS)
    assert lavaguest.DMESG_PROBLEMS == problems.ERE
    assert f"problems='{problems.ERE}'" in lavaguest.TEST_SCRIPT


@pytest.mark.parametrize("kind, line", EXAMPLES, ids=ID)
def test_the_parser_gives_its_kind(kind, line):
    assert [r.kind for r in reports.parse(printk(line) + "\n")][:1] == [kind]


@pytest.mark.parametrize("kind, line", EXAMPLES, ids=ID)
def test_dmesg_clean_fails_over_ssh(kind, line):
    assert testrun.dmesg_problems(f"{printk('ok')}\n{printk(line)}\n") == [printk(line)]


def guest_grep(lines: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([BUSYBOX, "grep", "-E", lavaguest.DMESG_PROBLEMS],
                          input="".join(f"{ln}\n" for ln in lines), capture_output=True,
                          text=True)


@pytest.mark.parametrize("kind, line", EXAMPLES, ids=ID)
def test_dmesg_clean_fails_in_the_lava_guest(kind, line):
    r = guest_grep([printk("ok"), printk(line)])
    assert r.returncode == 0 and r.stdout == printk(line) + "\n", r


def test_quiet_lines_are_no_problem_anywhere():
    assert not testrun.dmesg_problems("\n".join(map(printk, QUIET)))
    assert guest_grep(list(map(printk, QUIET))).returncode == 1
    assert not any(problems.is_problem(ln) for ln in QUIET)


def read_console(lines: list[str], tmp_path: Path) -> qemu.Guest:
    """A Guest whose reader thread's loop read these console lines (as QEMU's stdout)."""
    g = qemu.Guest(arch.X86_64, qemu.BootSpec(Path("k"), None, None, "tcg"),
                   tmp_path / "console.log")
    g.proc = SimpleNamespace(stdout=io.BytesIO("".join(f"{ln}\r\n" for ln in lines).encode()))
    g._read()
    return g


@pytest.mark.parametrize("kind, line", EXAMPLES, ids=ID)
def test_a_lost_qemu_guest_names_the_line(kind, line, tmp_path):
    g = read_console([printk("before"), "Testing move on anon... done", printk(line),
                      printk("after")], tmp_path)
    found = g.problem_since(1)
    assert found is not None and found[0] == printk(line).strip()
    assert g.excerpt(1) == printk(line)


@pytest.mark.parametrize("kind, line", EXAMPLES, ids=ID)
def test_a_lava_job_names_the_line(kind, line):
    console = [printk("before"), "orch-lava: begin uffd_move", printk(line), "after"]
    assert LavaOutcome("1", console=console).crash()[0] == printk(line).strip()
    assert lavaresults.crash_after(console, 1)[0] == printk(line).strip()


def test_the_patterns_read_the_same_in_python_and_posix():
    for pat in (pat for p in problems.PROBLEMS for pat in p.patterns):
        assert not re.search(r"\\[sSdDwW]|\(\?|\[\[:", pat), pat
