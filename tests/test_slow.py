"""The slow tier: real kernels built from the embedded default tree, booted in QEMU,
selftests run over SSH against a real dropbear, JUnit checked.

Runs against the real orch cache, so the first test pays for the builds and the others
reuse the kernels (which is itself what the "no compile on an unchanged input" test checks).
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from junitparser import JUnitXml

pytestmark = pytest.mark.slow

ORCH = [sys.executable, "-m", "orchestrator.cli"]
ROOT = Path(__file__).resolve().parent.parent
EXPECTED_BINARIES = sorted(p.stem for p in (ROOT / "selftests").glob("*.c"))


def orch(*args, timeout=2400):
    return subprocess.run([*ORCH, *args], capture_output=True, text=True, timeout=timeout)


def qemu_alive(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if "qemu-system" in ln]


def junit_by_suite(path: Path):
    return {s.name: s for s in JUnitXml.fromfile(str(path))}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    r = orch("run", "--arch", "x86_64,arm64", "-o", str(out), "--junit",
             str(out / "junit-both.xml"))
    return out, r


def test_full_run_both_arches(full_run):
    """The default run: 6.1 + patches/uffd-move on both arches, every test passes."""
    out, r = full_run
    assert r.returncode == 0, r.stderr[-4000:]
    suites = junit_by_suite(out / "junit-both.xml")
    for arch in ("x86_64", "arm64"):
        for binary in EXPECTED_BINARIES:
            s = suites[f"{arch}.{binary}"]
            assert s.failures == 0 and s.errors == 0, (arch, binary)
            props = {p.name: p.value for p in s.properties()}
            assert props["arch"] == arch
            assert props["kernel_release"].startswith("6.1.")
            assert props["accelerator"] in ("tcg", "kvm")
            assert props["series"].endswith("patches/uffd-move")
            assert int(props["series_patches"]) >= 3 and len(props["base_commit"]) == 40
        merge = suites[f"{arch}.vma_merge"]
        # every merge scenario really ran (not skipped) on 6.1
        assert merge.tests >= 6 and merge.skipped == 0
        probe = {c.name: c for c in suites[f"{arch}.uffd_move_probe"]}
        assert probe["uffd_feature_move"].is_passed
        move = suites[f"{arch}.uffd_move"]
        assert move.tests >= 20 and move.skipped <= 3, "the move suite must really run"
        console = (out / arch / "console.log").read_text()
        assert "Linux version 6.1." in console
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "passed" and meta["exit_code"] == 0
    for arch in ("x86_64", "arm64"):
        a = meta["arches"][arch]
        assert all(a["stages"][s]["status"] == "ok" for s in
                   ("config", "build", "selftests", "rootfs", "boot", "test"))
        assert a["boot_to_ssh_seconds"] > 0
        # the kernel carries its stamp (the store key as build host) in its banner
        console = (out / arch / "console.log").read_text()
        assert f"(orch@orch-{a['kernel']['key']})" in console
    assert meta["reproduce"].startswith("orch run --arch x86_64,arm64 --tree linux-6.1")
    assert meta["host"]["qemu"]["arm64"].startswith("QEMU emulator")
    assert len(meta["inputs"]["series"]["patches"]) >= 3


def test_bare_tree_move_tests_skip(full_run, tmp_path):
    """6.1 without the series: no UFFDIO_MOVE, so the move tests skip; they never fail."""
    out = tmp_path / "o"
    r = orch("run", "--arch", "x86_64", "--series", "none", "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    suites = junit_by_suite(out / "junit.xml")
    move = suites["x86_64.uffd_move"]
    assert move.failures == 0 and move.errors == 0
    assert move.skipped == move.tests - 1  # all but dmesg_clean
    probe = {c.name: c for c in suites["x86_64.uffd_move_probe"]}
    assert probe["uffd_feature_move"].is_skipped
    assert suites["x86_64.vma_merge"].failures == 0


def test_upstream_612_reference(full_run, tmp_path):
    """The same suite on upstream 6.12 (native UFFDIO_MOVE), x86_64."""
    if not Path("/usr/src/linux-source-6.12.tar.xz").exists():
        pytest.fail("linux-source-6.12 is not installed (ci/setup.sh installs it)")
    out = tmp_path / "o"
    r = orch("run", "--arch", "x86_64", "--tree", "linux-6.12", "--series", "none",
             "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    suites = junit_by_suite(out / "junit.xml")
    for binary in EXPECTED_BINARIES:
        s = suites[f"x86_64.{binary}"]
        assert s.failures == 0 and s.errors == 0, binary
        props = {p.name: p.value for p in s.properties()}
        assert props["kernel_release"].startswith("6.12.")
    move = suites["x86_64.uffd_move"]
    assert move.tests >= 20 and move.skipped <= 3


def test_unchanged_rerun_does_not_compile(full_run, tmp_path):
    out = tmp_path / "o"
    t0 = time.monotonic()
    r = orch("run", "--arch", "x86_64", "-o", str(out))
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["arches"]["x86_64"]["kernel"]["compiled"] is False
    assert not (out / "x86_64" / "build.log").exists()  # make never ran
    assert "up to date, no compile" in r.stderr
    print(f"no-change rerun took {took:.1f}s")


def _run_expecting(tmp_path, code, *args):
    out = tmp_path / "o"
    marker = f"orch.test={uuid.uuid4().hex[:12]}"
    extra = [a for a in args]
    if "--append" in extra:
        i = extra.index("--append")
        extra[i + 1] = f"{extra[i + 1]} {marker}"
    else:
        extra += ["--append", marker]
    r = orch("run", "--arch", "x86_64", "-o", str(out), *extra)
    assert r.returncode == code, r.stderr[-3000:]
    assert not qemu_alive(marker), "QEMU outlived the run"
    assert (out / "metadata.json").exists() and (out / "junit.xml").exists()
    return out, r


def test_kernel_panic_is_reported(full_run, tmp_path):
    out, r = _run_expecting(tmp_path, 3, "--append", "rdinit=/nonexistent")
    assert "Kernel panic" in r.stderr
    s = junit_by_suite(out / "junit.xml")["x86_64.orch-boot"]
    assert s.errors == 1
    assert "Kernel panic" in (out / "x86_64" / "console.log").read_text()


def test_boot_timeout(full_run, tmp_path):
    out, r = _run_expecting(tmp_path, 3, "--boot-timeout", "0.3")
    assert "boot timeout: guest not up after" in r.stderr


def test_guest_unreachable_over_ssh(full_run, tmp_path):
    out, r = _run_expecting(tmp_path, 3, "--append", "orch.sshd=0", "--ssh-timeout", "4")
    assert "guest unreachable over SSH" in r.stderr


def test_hanging_test_is_killed_and_run_goes_on(full_run, tmp_path):
    st = tmp_path / "tests"
    st.mkdir()
    (st / "a_hang.c").write_text(
        '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("KTAP version 1\\n'
        '1..2\\nok 1 before_hang\\n");fflush(stdout);for(;;)pause();}\n')
    (st / "b_ok.c").write_text(
        '#include <stdio.h>\nint main(void){printf("KTAP version 1\\n1..1\\nok 1 fine\\n");'
        'return 0;}\n')
    out, r = _run_expecting(tmp_path, 1, "--selftests", str(st), "--test-timeout", "5")
    suites = junit_by_suite(out / "junit.xml")
    hang = suites["x86_64.a_hang"]
    assert hang.errors >= 1
    cases = {c.name: c for c in hang}
    assert cases["before_hang"].is_passed
    assert "killed after 5s" in cases["timeout"].result[0].message
    ok = suites["x86_64.b_ok"]
    assert ok.failures == 0 and ok.errors == 0 and ok.tests == 2  # fine + dmesg_clean


def test_ctrl_c_mid_run(full_run, tmp_path):
    out = tmp_path / "o"
    marker = f"orch.test={uuid.uuid4().hex[:12]}"
    p = subprocess.Popen([*ORCH, "run", "--arch", "x86_64", "-o", str(out), "--append", marker],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    console = out / "x86_64" / "console.log"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if console.exists() and "Linux version" in console.read_text(errors="replace"):
            break
        time.sleep(0.05)
    assert qemu_alive(marker)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err
    assert not qemu_alive(marker)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "interrupted" and meta["exit_code"] == 130
    assert (out / "junit.xml").exists()


def _worktree(full_run) -> Path:
    out, _ = full_run
    return Path(json.loads((out / "metadata.json").read_text())["inputs"]["tree"]["worktree"])


def test_build_error_shows_compiler_line(full_run, tmp_path):
    lines = (_worktree(full_run) / "mm/mmap.c").read_text().splitlines()
    patch = tmp_path / "break-build.patch"
    patch.write_text("--- a/mm/mmap.c\n+++ b/mm/mmap.c\n@@ -1,3 +1,4 @@\n"
                     f" {lines[0]}\n+#error orch test: deliberate build failure\n"
                     f" {lines[1]}\n {lines[2]}\n")
    out, r = _run_expecting(tmp_path, 3, "--series", str(patch))
    assert "kernel build failed" in r.stderr
    assert "error: #error orch test: deliberate build failure" in r.stderr
    assert "deliberate build failure" in (out / "x86_64" / "build.log").read_text()


def test_patch_that_does_not_apply_names_file_and_hunk(full_run, tmp_path):
    patch = tmp_path / "0001-stale.patch"
    patch.write_text("From: A <a@b>\nSubject: [PATCH] mm: stale context\n\n---\n"
                     "diff --git a/mm/mmap.c b/mm/mmap.c\n--- a/mm/mmap.c\n+++ b/mm/mmap.c\n"
                     "@@ -10,3 +10,3 @@\n this line\n-is not\n+in 6.1\n at all\n")
    out, r = _run_expecting(tmp_path, 3, "--series", str(patch))
    assert "patch 0001-stale.patch ([PATCH] mm: stale context) does not apply: mm/mmap.c" \
        in r.stderr
    assert "hunk #1" in r.stderr and "worktree kept at" in r.stderr


def test_dropped_config_option_names_option_and_dependency(full_run, tmp_path):
    frag = tmp_path / "no-mce.config"
    frag.write_text("# CONFIG_X86_MCE is not set\n")
    out, r = _run_expecting(tmp_path, 2, "--config", str(frag))
    assert "CONFIG_MEMORY_FAILURE=y was dropped" in r.stderr
    assert "ARCH_SUPPORTS_MEMORY_FAILURE [=n]" in r.stderr


def test_boot_runs_one_command_over_ssh(full_run, tmp_path):
    r = orch("boot", "--arch", "arm64", "-o", str(tmp_path / "o"), "-c",
             "uname -m; cat /proc/sys/kernel/osrelease; exit 7")
    assert r.returncode == 7, r.stderr[-2000:]
    assert r.stdout.split()[0] == "aarch64" and r.stdout.split()[1].startswith("6.1.")


@pytest.mark.skipif(os.environ.get("ORCH_SKIP_DOCTOR") == "1", reason="disabled")
def test_doctor_reports_kvm_verdict(full_run):
    r = orch("doctor")
    assert r.returncode == 0, r.stdout
    assert "x86_64:" in r.stdout and ("KVM works" in r.stdout or "TCG" in r.stdout)


def test_sigkill_of_orch_takes_qemu_down(full_run, tmp_path):
    out = tmp_path / "o"
    marker = f"orch.test={uuid.uuid4().hex[:12]}"
    p = subprocess.Popen([*ORCH, "run", "--arch", "x86_64", "-o", str(out), "--append", marker],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not qemu_alive(marker):
        time.sleep(0.05)
    assert qemu_alive(marker)
    p.kill()
    p.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and qemu_alive(marker):
        time.sleep(0.1)
    assert not qemu_alive(marker)


@pytest.mark.skipif(os.environ.get("ORCH_DEBUG_TESTS") != "1",
                    reason="debug-profile kernels (KASAN, lockdep) add ~13 min of cold "
                    "builds: set ORCH_DEBUG_TESTS=1")
def test_debug_profile_move_suite_is_clean(tmp_path):
    """6.1 + series with DEBUG_VM, lockdep, KASAN: no report on either arch."""
    out = tmp_path / "o"
    r = orch("run", "--debug", "--arch", "x86_64,arm64", "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    suites = junit_by_suite(out / "junit.xml")
    for arch in ("x86_64", "arm64"):
        console = (out / arch / "console.log").read_text()
        assert "KernelAddressSanitizer initialized" in console
        assert "Lock dependency validator" in console
        for binary in EXPECTED_BINARIES:
            s = suites[f"{arch}.{binary}"]
            assert s.failures == 0 and s.errors == 0, (arch, binary)
            assert next(c for c in s if c.name == "dmesg_clean").is_passed
