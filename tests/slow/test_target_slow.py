"""The slow tier for `--target ssh://`: a board that orch's run did not start.

The board is a QEMU guest this test boots itself: the bare 6.1 kernel (kexec enabled) with
orch.board's initramfs (busybox, dropbear, kexec-tools, its own host key, a copy of itself
at /boot/initrd.cpio), SSH forwarded from a local port. orch reaches it like any machine:
through ~/.ssh/config (a HOME of the test's own) and a strict known_hosts.

Kernels are the ones the rest of the slow tier builds (store hits): bare 6.1 x86_64 for
the board, 6.1 + patches/uffd-move for what gets deployed.
"""

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from junitparser import JUnitXml

from orchestrator.base.runner import Runner
from orchestrator.kernel import arch
from orchestrator.store import cache
from orchestrator.targets import qemu
from tests.support import board
from tests.support.orch import orch, orch_popen

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_BINARIES = sorted(p.stem for p in (ROOT / "selftests").glob("*.c"))


@dataclass
class Board:
    port: int
    known_hosts: Path
    home: Path
    guest: qemu.Guest

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        # orch's cache stays the real one (kernels are store hits); HOME is the test's own,
        # so ~/.ssh/config and ~/.ssh/known_hosts are the board's, never the user's.
        env.update(HOME=str(self.home), ORCH_CACHE=str(cache.cache_root()))
        return env

    def orch(self, *args, timeout=2400):
        t0 = time.monotonic()
        r = orch(*args, timeout=timeout, env=self.env(), inherit=False, cwd=ROOT)
        r.seconds = time.monotonic() - t0
        return r

    def ssh(self, command: str) -> str:
        """A command on the board, with OpenSSH and the board's own config."""
        r = subprocess.run(["ssh", "-F", str(self.home / ".ssh/config"), "board", command],
                           capture_output=True, text=True, timeout=60, env=self.env())
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()


def junit_by_binary(path: Path):
    """One cell per run here: the testsuites by binary (suite names are CELL.BINARY)."""
    return {s.name.rsplit(".", 1)[-1]: s for s in JUnitXml.fromfile(str(path))}


@pytest.fixture(scope="module")
def bare_kernel(tmp_path_factory):
    """The bare 6.1 x86_64 kernel (no series; CONFIG_KEXEC from configs/base.config)."""
    out = tmp_path_factory.mktemp("bare")
    r = orch("run", "--arch", "x86_64", "--series", "none", "--test", "uffd_move_probe", "-o",
             str(out), timeout=2400)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "metadata.json").read_text())
    return Path(meta["arches"]["x86_64"]["kernel"]["store"]) / "bzImage"


def start_board(tmp: Path, kernel: Path, a: arch.Arch = arch.X86_64):
    keydir = tmp / "board-keys"
    runner = Runner()
    initrd = board.initramfs(a, keydir, runner)
    keys = board.keys(runner, keydir)
    home = tmp / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    cm = qemu.reserved_port()
    port = cm.__enter__()
    g = qemu.Guest(a, board.spec(a, kernel, initrd, port), tmp / "board-console.log")
    g.__enter__()
    g.wait_ready(300)
    (home / ".ssh/config").write_text(
        f"Host board 127.0.0.1\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
        f"  IdentityFile {keys.client}\n  IdentitiesOnly yes\n  StrictHostKeyChecking yes\n"
        f"  UserKnownHostsFile {home / '.ssh/known_hosts'}\n")
    kh = home / ".ssh/known_hosts"
    kh.write_text(f"[127.0.0.1]:{port} {keys.host_pub}\n")
    return Board(port, kh, home, g), cm


@pytest.fixture(scope="module")
def board_guest(tmp_path_factory, bare_kernel):
    """One board for the tests below, in order: tested as it is, then deployed to."""
    b, cm = start_board(tmp_path_factory.mktemp("board"), bare_kernel)
    yield b
    b.guest.stop()
    cm.__exit__(None, None, None)


def test_no_deploy_tests_the_running_kernel(board_guest, tmp_path):
    """--no-deploy on the bare board: the kernel has no UFFDIO_MOVE, the move tests skip."""
    b = board_guest
    before = b.ssh("cat /proc/version")
    out = tmp_path / "o"
    r = b.orch("run", "--target", "ssh://board", "--no-deploy", "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    suites = junit_by_binary(out / "junit.xml")
    move = suites["uffd_move"]
    assert move.failures == 0 and move.errors == 0
    assert move.skipped == move.tests - 1  # all but dmesg_clean
    probe = {c.name: c for c in suites["uffd_move_probe"]}
    assert probe["uffd_feature_move"].is_skipped
    props = {p.name: p.value for p in move.properties()}
    assert props["target"] == "ssh://board" and props["deploy"] == "none"
    assert props["kernel_release"].startswith("6.1.")
    assert b.ssh("cat /proc/version") == before  # same kernel still running
    # what orch uploaded is gone; the kernel log was read by position, never cleared
    assert b.ssh("ls /tmp") == ""
    assert "orch: begin uffd_move " in b.ssh("dmesg")
    assert "Linux version" in b.ssh("dmesg")
    print(f"no-deploy run: {r.seconds:.1f}s")


HOLD = r"""
#include <stdio.h>
#include <unistd.h>
int main(void)
{
	printf("KTAP version 1\n1..1\n");
	fflush(stdout);
	sleep(600);
	printf("ok 1 held\n");
	return 0;
}
"""


def test_sigterm_during_a_test_leaves_nothing_on_the_board(board_guest, tmp_path):
    """One SIGTERM while a test runs on the board: orch stops at once (130), and the test
    binary and what orch uploaded are gone from the board."""
    b = board_guest
    st = tmp_path / "st"
    st.mkdir()
    (st / "orch_hold.c").write_text(HOLD)
    out = tmp_path / "o"
    proc = orch_popen("run", "--target", "ssh://board", "--no-deploy", "--selftests", str(st),
                      "-o", str(out), env=b.env(), inherit=False, cwd=ROOT,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while "orch_hold" not in b.ssh("ps -o args | grep [o]rch_hold || true"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.5)
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "orch: interrupted by SIGTERM" in err
    assert b.ssh("ps -o args | grep [o]rch_hold || true") == ""
    assert b.ssh("ls /tmp") == ""


def test_kexec_deploy_runs_the_move_suite(board_guest, tmp_path):
    """The default run (6.1 + uffd-move) deployed to the board by kexec."""
    b = board_guest
    out = tmp_path / "o"
    r = b.orch("run", "--target", f"ssh://root@127.0.0.1:{b.port}", "--known-hosts",
               str(b.known_hosts), "--target-initrd", board.INITRD_COPY, "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "metadata.json").read_text())
    a = meta["arches"]["x86_64"]
    key = a["kernel"]["key"]
    release = a["kernel"]["release"]
    suites = junit_by_binary(out / "junit.xml")
    for binary in EXPECTED_BINARIES:
        s = suites[binary]
        assert s.failures == 0 and s.errors == 0, binary
        props = {p.name: p.value for p in s.properties()}
        assert props["kernel_release"] == release
        assert props["target"] == f"ssh://127.0.0.1:{b.port}" and props["deploy"] == "kexec"
    move = suites["uffd_move"]
    assert move.tests >= 20 and move.skipped <= 3, "the move suite must really run"
    # the board now runs the kernel orch built: its release and its stamp
    version = b.ssh("cat /proc/version")
    assert version.startswith(f"Linux version {release} (orch@orch-{key})")
    assert "rootfs" not in a["stages"]  # the board has its own userland
    deploy = a["target"]["deploy_seconds"]
    assert deploy > 0
    # the board's console shows the second kernel booting
    console = (b.guest.console_log).read_text()
    assert console.count("Linux version") == 2
    print(f"kexec deploy: {deploy}s from kexec to SSH; whole run {r.seconds:.1f}s")


def test_reboot_cmd_deploys_with_the_users_script(board_guest, tmp_path):
    """--reboot-cmd: the user's own script installs the kernel (here: by kexec, over
    OpenSSH); orch waits for the machine to come back and checks the kernel's stamp."""
    b = board_guest
    before = b.ssh("cat /proc/sys/kernel/random/boot_id")
    script = tmp_path / "deploy.sh"
    cfg = b.home / ".ssh/config"
    script.write_text(
        "#!/bin/sh\nset -e\n"
        f"ssh -F {cfg} board 'cat > /tmp/k' < \"$ORCH_KERNEL\"\n"
        f"ssh -F {cfg} board 'kexec -l /tmp/k --initrd={board.INITRD_COPY} --reuse-cmdline "
        "&& rm /tmp/k && (setsid sh -c \"sleep 1; kexec -e\" </dev/null >/dev/null 2>&1 &)'\n"
        "echo \"$ORCH_KERNEL_RELEASE $ORCH_KERNEL_STAMP $ORCH_TARGET\" > \"$0.env\"\n")
    script.chmod(0o755)
    out = tmp_path / "o"
    r = b.orch("run", "--target", "ssh://board", "--reboot-cmd", str(script),
               "--test", "uffd_move_probe", "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "metadata.json").read_text())
    a = meta["arches"]["x86_64"]
    assert a["target"]["deploy"] == "reboot-cmd" and a["target"]["deploy_seconds"] > 0
    release, stamp, target = Path(f"{script}.env").read_text().split()
    assert (release, stamp, target) == (a["kernel"]["release"],
                                        f"orch-{a['kernel']['key']}", "ssh://board")
    assert b.ssh("cat /proc/sys/kernel/random/boot_id") != before
    probe = {c.name: c for c in junit_by_binary(out / "junit.xml")["uffd_move_probe"]}
    assert probe["uffd_feature_move"].is_passed


MOVE_ONE = r"""
/* One UFFDIO_MOVE of one page into a registered hole: the move path's lines, quickly. */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MOVE };
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	char *src = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *dst = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || src == MAP_FAILED || dst == MAP_FAILED)
		return 1;
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_move mv = { .dst = (unsigned long)dst, .src = (unsigned long)src };

	reg.range.start = (unsigned long)dst;
	reg.range.len = pg;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return 1;
	memset(src, 0x5a, pg);
	mv.len = pg;
	if (ioctl(uffd, UFFDIO_MOVE, &mv) || mv.move != pg || dst[pg - 1] != 0x5a)
		return 1;
	return 0;
}
"""


def test_coverage_on_a_board_over_ssh(board_guest, coverage_run, tmp_path):
    """--coverage on a board: the coverage kernel (coverage_run's, a store hit) deployed by
    kexec; orch mounts debugfs there and takes the gcov data per binary over SSH. The
    binary moves one page, so the series' move path shows as run, by it."""
    b = board_guest
    st = tmp_path / "st"
    st.mkdir()
    (st / "move_one.c").write_text(MOVE_ONE)
    out = tmp_path / "o"
    r = b.orch("run", "--target", "ssh://board", "--target-initrd", board.INITRD_COPY,
               "--coverage", "--selftests", str(st), "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "up to date, no compile" in r.stderr  # progress
    doc = json.loads((out / "results.json").read_text())
    (cid, cell), = doc["coverage"]["cells"].items()
    assert cid == "x86_64.linux-6.1.uffd-move.coverage.board"
    assert cell["supported"] and cell["executable"] > 100 and 20 < cell["run"], cell
    ran = {b for p in doc["coverage"]["patches"] for ln in p["lines"]
           for c in ln.get("cells", {}).values() for b in c.get("ran_by", [])}
    assert ran == {"move_one"}, ran
    assert sorted(p.name for p in (out / "x86_64/coverage/gcda").iterdir()) == [
        "(boot).tar", "move_one.tar"]
    assert b.ssh("ls /tmp") == ""  # the data's temporary copy is gone too


def test_kexec_refused_leaves_the_board_running(board_guest, tmp_path):
    b = board_guest
    before = b.ssh("cat /proc/version")
    b.ssh("echo 1 > /proc/sys/kernel/kexec_load_disabled")  # as a locked-down machine
    r = b.orch("run", "--target", "ssh://board", "--target-initrd", board.INITRD_COPY,
               "--test", "uffd_move_probe", "-o", str(tmp_path / "o"))
    assert r.returncode == 3, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("orch:")]
    assert any("kexec refused the kernel" in ln for ln in lines), r.stderr
    assert b.ssh("cat /proc/version") == before  # reachable, same kernel
    assert b.ssh("ls /tmp") == ""


def test_wrong_arch_is_found_before_anything_slow(board_guest, tmp_path):
    b = board_guest
    r = b.orch("run", "--target", "ssh://board", "--arch", "arm64", "--no-deploy",
               "-o", str(tmp_path / "o"))
    assert r.returncode == 3, r.stderr[-3000:]
    assert "board is x86_64, not arm64" in r.stderr


def test_unreachable_host(tmp_path):
    with qemu.reserved_port() as port:  # nobody listens there
        r = orch("run", "--target", f"ssh://root@127.0.0.1:{port}", "--ssh-timeout", "3",
                 "-o", str(tmp_path / "o"), timeout=600,
                 env={"HOME": str(tmp_path), "ORCH_CACHE": str(cache.cache_root())})
    assert r.returncode == 3, r.stderr[-3000:]
    assert f"unreachable over SSH on 127.0.0.1:{port}" in r.stderr
    assert (tmp_path / "o" / "junit.xml").exists()


def test_kernel_that_never_comes_back(bare_kernel, tmp_path):
    """kexec into a kernel whose userland never starts sshd: exit 3 within the timeout."""
    b, cm = start_board(tmp_path, bare_kernel)
    try:
        r = b.orch("run", "--target", "ssh://board", "--target-initrd", board.INITRD_COPY,
                   "--append", "orch.sshd=0", "--boot-timeout", "20", "--test",
                   "uffd_move_probe", "-o", str(tmp_path / "o"))
        assert r.returncode == 3, r.stderr[-3000:]
        assert "never came back: no SSH from board within 20s" in r.stderr
        console = b.guest.console_log.read_text()
        assert "sshd disabled on the kernel command line" in console
    finally:
        b.guest.stop()
        cm.__exit__(None, None, None)


def test_arm64_board_kexec(tmp_path):
    """arm64 under TCG: an arm64 board (the default series' kernel, a store hit) deploys
    the same kernel again by kexec; a new boot id and the stamp prove it was reloaded."""
    out = tmp_path / "k"
    r = orch("run", "--arch", "arm64", "--test", "uffd_move_probe", "-o", str(out),
             timeout=2400)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "metadata.json").read_text())
    image = Path(meta["arches"]["arm64"]["kernel"]["store"]) / "Image"
    b, cm = start_board(tmp_path, image, arch.ARM64)
    try:
        before = b.ssh("cat /proc/sys/kernel/random/boot_id")
        o = tmp_path / "o"
        r = b.orch("run", "--target", "ssh://board", "--arch", "arm64", "--target-initrd",
                   board.INITRD_COPY, "--test", "uffd_move_probe", "-o", str(o))
        assert r.returncode == 0, r.stderr[-3000:]
        a = json.loads((o / "metadata.json").read_text())["arches"]["arm64"]
        assert a["target"]["deploy"] == "kexec"
        assert b.ssh("cat /proc/sys/kernel/random/boot_id") != before
        assert f"(orch@orch-{a['kernel']['key']})" in b.ssh("cat /proc/version")
        probe = {c.name: c for c in junit_by_binary(o / "junit.xml")["uffd_move_probe"]}
        assert probe["uffd_feature_move"].is_passed
        print(f"arm64 kexec deploy: {a['target']['deploy_seconds']}s from kexec to SSH")
    finally:
        b.guest.stop()
        cm.__exit__(None, None, None)
