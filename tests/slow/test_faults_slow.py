"""Fault injection on real kernels, one test per fault: each checks the exit code (plain and
under --bisect-exit), the one-line message, and the JUnit (`error` for infrastructure,
`failure` for the test's own result, with the console excerpt where the kernel crashed).

They reuse the store-hit kernel of the default run (6.1 + patches/uffd-move, x86_64) and
private --selftests dirs of tiny binaries, so each costs a boot at most. Store faults run
orch in a private mount namespace (unshare -m, root): a copy or a small tmpfs is mounted
over the cache's kernels/ for that orch only; the shared store is never touched.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml

from orchestrator.store import cache
from tests.support.orch import ORCH, orch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
X86 = ["--arch", "x86_64"]

# Test binaries: KTAP start, a line on the console (via /dev/kmsg) the test waits for,
# then the fault.
PRELUDE = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void say(const char *what)
{
	int fd = open("/dev/kmsg", O_WRONLY);
	if (fd >= 0) { write(fd, what, strlen(what)); close(fd); }
}
int main(void)
{
	printf("KTAP version 1\n1..2\nok 1 before_the_fault\n");
	fflush(stdout);
	say("orch-fault: " NAME " running\n");
"""
BODIES = {
    # waits: the host kills QEMU, or signals orch
    "hold": "\tsleep(600);\n",
    # the kernel crashes (CONFIG_MAGIC_SYSRQ=y is in configs/base.config)
    "crash": '\tint fd = open("/proc/sysrq-trigger", O_WRONLY);\n'
             '\tsleep(1);\n\twrite(fd, "c", 1);\n\tsleep(600);\n',
    # the SSH server goes away (the session's dropbear with it); the guest lives on
    "cut": '\tsleep(1);\n\tsystem("kill -9 $(pidof dropbear)");\n\tsleep(600);\n',
}


def selftests(tmp_path: Path, name: str) -> Path:
    d = tmp_path / f"st-{name}"
    d.mkdir(exist_ok=True)
    (d / f"{name}.c").write_text(f'#define NAME "{name}"\n' + PRELUDE + BODIES[name] +
                                 "\tprintf(\"ok 2 after_the_fault\\n\");\n\treturn 0;\n}\n")
    return d


def qemu_pids(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    pids = []
    for pid in out.split():
        try:
            if "qemu-system" in Path(f"/proc/{pid}/cmdline").read_text():
                pids.append(int(pid))
        except OSError:
            pass
    return pids


def wait_until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def meta(out: Path) -> dict:
    try:
        return json.loads((out / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}


def stage_status(out: Path, stage: str, arch: str = "x86_64") -> str:
    m = meta(out)
    if stage == "apply":
        return m.get("apply", {}).get("status", "")
    return m.get("arches", {}).get(arch, {}).get("stages", {}).get(stage, {}).get("status", "")


def console_has(out: Path, text: str, arch: str = "x86_64") -> bool:
    p = out / arch / "console.log"
    return p.exists() and text in p.read_text(errors="replace")


def suite(out: Path, arch: str, binary: str):
    """A JUnit testsuite by arch and binary (its name is the cell id, then the binary)."""
    found = [s for s in JUnitXml.fromfile(str(out / "junit.xml"))
             if s.name.startswith(f"{arch}.") and s.name.endswith(f".{binary}")]
    assert len(found) == 1, (arch, binary, found)
    return found[0]


def kinds(out: Path, binary: str) -> dict[str, tuple[str, str]]:
    """results.json: testcase name -> (status, kind) of one binary."""
    data = json.loads((out / "results.json").read_text())
    return {t["name"]: (t["status"], t["kind"]) for t in data["tests"]
            if t["binary"] == binary}


def results_of(suite, kind) -> list:
    return [r for c in suite for r in c.result if isinstance(r, kind)]


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_orch_left_behind():
    """A test that fails while waiting must not leave its orch running (holding a tree
    lock, or a QEMU): SIGTERM what is still up, then SIGKILL."""
    yield
    while STARTED:
        p = STARTED.pop()
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Orch:
    """An orch run in the background, with a QEMU marker on the kernel command line."""

    def __init__(self, tmp_path: Path, tag: str, *args: str, env: dict | None = None,
                 wrap: list[str] | None = None):
        self.out = tmp_path / tag
        self.marker = f"orch.test={uuid.uuid4().hex[:12]}"
        argv = [*ORCH, "run", *args, "-o", str(self.out), "--append", self.marker]
        self.proc = subprocess.Popen([*(wrap or []), *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        STARTED.append(self.proc)

    def finish(self, timeout: float = 1800) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        self.err = err
        assert not qemu_pids(self.marker), "QEMU outlived the run"
        assert (self.out / "metadata.json").exists() and (self.out / "junit.xml").exists()
        return self.proc.returncode, err

    def error_line(self, prefix: str) -> str:
        lines = [ln for ln in self.err.splitlines() if ln.startswith(prefix)]
        assert len(lines) == 1, self.err[-3000:]
        return lines[0]


def run_both(tmp_path, tag, args, fault, env=None, wrap=None):
    """The same fault, plain and under --bisect-exit: [(orch, exit code), ...]."""
    done = []
    for flags in ([], ["--bisect-exit"]):
        o = Orch(tmp_path, f"{tag}{'-bisect' if flags else ''}", *args, *flags, env=env,
                 wrap=wrap)
        fault(o)
        rc, _ = o.finish()
        done.append((o, rc))
    return done


# --- faults during a test -------------------------------------------------------------------

def test_qemu_killed_during_a_test_is_infrastructure(tmp_path):
    st = selftests(tmp_path, "hold")

    def kill_qemu(o):
        wait_until(lambda o=o: console_has(o.out, "orch-fault: hold running"), 900,
                       "the test")
        for pid in qemu_pids(o.marker):
            os.kill(pid, signal.SIGKILL)

    (plain, rc), (bis, brc) = run_both(tmp_path, "qemu", [*X86, "--selftests", str(st)],
                                       kill_qemu)
    assert (rc, brc) == (3, 125), plain.err[-3000:]
    for o in (plain, bis):
        line = o.error_line("orch: [x86_64] test: ")
        assert "QEMU was killed by SIGKILL during hold" in line, line
        s = suite(o.out, "x86_64", "hold")
        assert results_of(s, Error) and not results_of(s, Failure)
        assert {c.name for c in s if c.is_passed} == {"before_the_fault"}
        assert meta(o.out)["arches"]["x86_64"]["error"].startswith("QEMU was killed")
        assert kinds(o.out, "hold")["qemu"] == ("error", "qemu")


def test_ssh_cut_during_a_test_is_infrastructure(tmp_path):
    st = selftests(tmp_path, "cut")
    (plain, rc), (bis, brc) = run_both(tmp_path, "cut", [*X86, "--selftests", str(st)],
                                       lambda o: None)
    assert (rc, brc) == (3, 125), plain.err[-3000:]
    for o in (plain, bis):
        line = o.error_line("orch: [x86_64] test: ")
        assert "SSH connection lost during cut" in line and "guest still running" in line, line
        s = suite(o.out, "x86_64", "cut")
        assert results_of(s, Error) and not results_of(s, Failure)
        assert kinds(o.out, "cut")["ssh"] == ("error", "ssh")


def test_kernel_crash_during_a_test_is_the_tests_failure(tmp_path):
    st = selftests(tmp_path, "crash")
    (plain, rc), (bis, brc) = run_both(tmp_path, "crash", [*X86, "--selftests", str(st)],
                                       lambda o: None)
    assert (rc, brc) == (1, 1), plain.err[-3000:]
    for o in (plain, bis):
        line = o.error_line("orch: [x86_64] test: ")
        assert "kernel crashed during crash: " in line and "sysrq" in line, line
        s = suite(o.out, "x86_64", "crash")
        fails = results_of(s, Failure)
        assert fails and not results_of(s, Error), [(c.name, c.result) for c in s]
        crash = next(c for c in s if c.name == "kernel_crash")
        assert "Kernel panic - not syncing: sysrq triggered crash" in crash.result[0].message
        # the console excerpt, from the panic line on, is the failing testcase's output
        assert "Kernel panic - not syncing" in crash.system_out
        assert "Call Trace" in crash.system_out or "Comm: crash" in crash.system_out
        assert "Kernel panic" in (o.out / "x86_64" / "console.log").read_text()
        assert kinds(o.out, "crash")["kernel_crash"] == ("fail", "crash")


# --- faults of the cache --------------------------------------------------------------------

def _need_root():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.fail("store fault tests mount over the cache in a private mount namespace: "
                    "they need root and unshare(1) (CI runs as root)")


def _kernels() -> Path:
    return cache.cache_root() / "kernels"


def private_mount(mount: list[str], after: str = "") -> list[str]:
    """argv prefix: run the command with `mount` done in a private mount namespace."""
    script = f'{shlex.join(mount)} || exit 99; "$@"; rc=$?; {after or ":"}; exit $rc'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]


@pytest.fixture(scope="module")
def default_kernel(tmp_path_factory):
    """The default x86_64 kernel (a store hit when anyone built it before)."""
    out = tmp_path_factory.mktemp("ref") / "o"
    r = orch("run", *X86, "--test", "uffd_move_probe", "-o", str(out), timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(meta(out)["arches"]["x86_64"]["kernel"]["store"])


def test_damaged_store_entry_is_rebuilt(tmp_path, default_kernel):
    _need_root()
    copy = tmp_path / "kernels"
    copy.mkdir()
    damaged = copy / default_kernel.name

    done = []
    for flags in ([], ["--bisect-exit"]):
        shutil.rmtree(damaged, ignore_errors=True)
        shutil.copytree(default_kernel, damaged)
        image = damaged / "bzImage"
        image.write_bytes(image.read_bytes()[:-4096])  # truncated
        o = Orch(tmp_path, f"damaged{'-bisect' if flags else ''}", *X86, "--test",
                 "uffd_move_probe", *flags,
                 wrap=private_mount(["mount", "--bind", str(copy), str(_kernels())]))
        rc, err = o.finish()
        done.append((o, rc))
        line = o.error_line("orch: [x86_64] build: ")
        assert f"stored kernel {default_kernel.name} is damaged: bzImage" in line, line
        assert "removing it and building again" in line
        assert meta(o.out)["arches"]["x86_64"]["kernel"]["compiled"] is True
        info = json.loads((damaged / "kernel.json").read_text())
        assert info["image_sha256"] == cache.file_digest(image)  # rebuilt, digest recorded
        assert suite(o.out, "x86_64", "uffd_move_probe").errors == 0
    assert [rc for _, rc in done] == [0, 0], done[0][0].err[-3000:]
    # the shared store was not touched
    assert json.loads((default_kernel / "kernel.json").read_text()).get("image_sha256") in (
        None, cache.file_digest(default_kernel / "bzImage"))


def test_no_space_left_while_storing_the_kernel(tmp_path, default_kernel):
    _need_root()
    done = []
    for flags in ([], ["--bisect-exit"]):
        listing = tmp_path / f"listing{len(done)}"
        wrap = private_mount(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                              str(_kernels())], after=f"ls -A {shlex.quote(str(_kernels()))}"
                             f" > {shlex.quote(str(listing))}")
        o = Orch(tmp_path, f"enospc{'-bisect' if flags else ''}", *X86, "--test",
                 "uffd_move_probe", *flags, wrap=wrap)
        rc, err = o.finish()
        done.append(rc)
        line = o.error_line("orch: [x86_64] build: ")
        assert "cannot store the x86_64 kernel in" in line, line
        assert "No space left on device" in line
        assert listing.read_text().split() == [], "a half-written store entry was left"
        s = suite(o.out, "x86_64", "orch-build")
        assert results_of(s, Error)
        assert meta(o.out)["arches"]["x86_64"]["stages"]["build"]["status"] == "failed"
    assert done == [3, 125]


# --- SIGTERM in each stage, and an internal error -------------------------------------------

STAGES = ["apply", "config", "build", "selftests", "rootfs", "boot", "test"]


@pytest.mark.parametrize("stage", STAGES)
def test_sigterm_in_each_stage_stops_the_whole_run(tmp_path, default_kernel, stage):
    st = selftests(tmp_path, "hold")
    args = ["--arch", "x86_64,arm64", "--selftests", str(st)]
    env = {}
    if stage in ("apply", "config", "build", "selftests", "rootfs"):
        # With the kernel in the store these take a second or less: hold them at their
        # start (hooks.py), the stage's status already "running".
        env = {"ORCH_TEST_HOLD": stage}
    codes = []
    # The exit code does not depend on the stage: --bisect-exit is checked in two of them
    # (one with make running, one with QEMU up), plain in all.
    for flags in ([], ["--bisect-exit"]) if stage in ("build", "test") else ([],):
        o = Orch(tmp_path, f"term-{stage}{'-bisect' if flags else ''}", *args, *flags,
                 env=env)
        if stage == "boot":
            wait_until(lambda o=o: console_has(o.out, "Linux version"), 900, "the boot")
        elif stage == "test":
            wait_until(lambda o=o: console_has(o.out, "orch-fault: hold running"), 900,
                       "the test")
        else:
            wait_until(lambda o=o: stage_status(o.out, stage) == "running", 900, stage)
        os.kill(o.proc.pid, signal.SIGTERM)
        rc, err = o.finish(timeout=120)
        codes.append(rc)
        assert "orch: interrupted by SIGTERM; partial results written to" in err, err[-2000:]
        m = meta(o.out)
        assert m["status"] == "interrupted" and m["exit_code"] == 130
        assert stage_status(o.out, stage) == "interrupted", m
        # One signal stopped everything. The tree stages (config, build) run for every
        # arch first, then each arch boots and tests: arm64 got no further than that.
        arm = {k: r["status"] for k, r in m["arches"]["arm64"]["stages"].items()}
        assert set(arm.values()) <= {"ok", "not run"}, arm
        later = ["config", "build"] if stage in ("apply", "config", "build") else []
        for name in later + ["selftests", "rootfs", "boot", "test"]:
            assert arm[name] == "not run", arm
        assert "[arm64] booted" not in err
        assert results_of(suite(o.out, "x86_64", "orch-interrupted"), Error)
        assert results_of(suite(o.out, "arm64", "orch-interrupted"), Error)
    assert codes == [130, 128][:len(codes)]


def test_internal_error_during_a_test(tmp_path, default_kernel):
    st = selftests(tmp_path, "hold")
    (plain, rc), (bis, brc) = run_both(
        tmp_path, "internal", [*X86, "--selftests", str(st)], lambda o: None,
        env={"ORCH_TEST_INTERNAL_ERROR": "test"})
    assert (rc, brc) == (3, 128), plain.err[-3000:]
    for o in (plain, bis):
        assert o.err.strip().splitlines()[-1] == \
            "orch: internal error: InternalError: ORCH_TEST_INTERNAL_ERROR=test (test hook)"
        m = meta(o.out)
        assert m["status"] == "internal-error"
        assert m["arches"]["x86_64"]["stages"]["boot"]["status"] == "ok"
        assert results_of(suite(o.out, "x86_64", "orch-internal"), Error)
