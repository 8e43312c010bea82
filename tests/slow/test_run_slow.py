"""The slow tier: real kernels built from the embedded default tree, booted in QEMU,
selftests run over SSH against a real dropbear, JUnit checked.

Runs against the real orch cache, so the first test pays for the builds and the others
reuse the kernels (which is itself what the "no compile on an unchanged input" test checks).
"""

import json
import os
import signal
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.support.doctor import acceleration, agrees_with_run
from tests.support.host import qemu_alive
from tests.support.orch import orch as run_orch
from tests.support.orch import orch_popen

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_BINARIES = sorted(p.stem for p in (ROOT / "selftests").glob("*.c"))


def orch(*args, timeout=2400):
    return run_orch(*args, timeout=timeout)


def junit_by_suite(path: Path):
    return {s.name: s for s in JUnitXml.fromfile(str(path))}


def sid(arch: str, binary: str, tree: str = "linux-6.1", series: str = "uffd-move",
        profile: str = "default") -> str:
    """A JUnit suite (= testcase classname): the cell id, then the binary."""
    return f"{arch}.{tree}.{series}.{profile}.qemu.{binary}"


@pytest.fixture(scope="module")
def full_run(default_qemu_run):
    return default_qemu_run  # tests/slow/conftest.py: shared with the LAVA tests


def test_full_run_both_arches(full_run):
    """The default run: 6.1 + patches/uffd-move on both arches, every test passes."""
    out, r = full_run
    assert r.returncode == 0, r.stderr[-4000:]
    suites = junit_by_suite(out / "junit-both.xml")
    for arch in ("x86_64", "arm64"):
        for binary in EXPECTED_BINARIES:
            s = suites[sid(arch, binary)]
            assert s.failures == 0 and s.errors == 0, (arch, binary)
            props = {p.name: p.value for p in s.properties()}
            assert props["arch"] == arch
            assert props["kernel_release"].startswith("6.1.")
            assert props["accelerator"] in ("tcg", "kvm")
            assert props["series"].endswith("patches/uffd-move")
            assert int(props["series_patches"]) >= 3 and len(props["base_commit"]) == 40
        merge = suites[sid(arch, "vma_merge")]
        # every merge scenario really ran (not skipped) on 6.1
        assert merge.tests >= 6 and merge.skipped == 0
        probe = {c.name: c for c in suites[sid(arch, "uffd_move_probe")]}
        assert probe["uffd_feature_move"].is_passed
        move = suites[sid(arch, "uffd_move")]
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
    # results.json: both cells, every testcase with its time (the test's own) and source
    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == "orch-results" and res["exit_code"] == 0
    assert [c["id"] for c in res["cells"]] == [
        "x86_64.linux-6.1.uffd-move.default.qemu", "arm64.linux-6.1.uffd-move.default.qemu"]
    assert all(c["exit_code"] == 0 and c["kernel_release"].startswith("6.1.")
               for c in res["cells"])
    ktap_cases = [t for t in res["tests"] if t["kind"] == "ktap"]
    assert ktap_cases and all(t["duration_source"] == "ktap" for t in ktap_cases)
    assert all((out / t["logs"]["output"]).is_file() for t in ktap_cases)
    root = ET.parse(out / "junit-both.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == len(res["tests"])
    assert len({(c.get("classname"), c.get("name")) for c in cases}) == len(cases)
    assert all(c.get("file", "").startswith("selftests/") and c.get("time") for c in cases)
    assert meta["host"]["qemu"]["arm64"].startswith("QEMU emulator")
    assert len(meta["inputs"]["series"]["patches"]) >= 3


def test_bare_tree_move_tests_skip(full_run, tmp_path):
    """6.1 without the series: no UFFDIO_MOVE, so the move tests skip; they never fail."""
    out = tmp_path / "o"
    r = orch("run", "--arch", "x86_64", "--series", "none", "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    suites = junit_by_suite(out / "junit.xml")
    move = suites[sid("x86_64", "uffd_move", series="none")]
    assert move.failures == 0 and move.errors == 0
    assert move.skipped == move.tests - 1  # all but dmesg_clean
    probe = {c.name: c for c in suites[sid("x86_64", "uffd_move_probe", series="none")]}
    assert probe["uffd_feature_move"].is_skipped
    assert suites[sid("x86_64", "vma_merge", series="none")].failures == 0


@pytest.fixture(scope="module")
def ref_612(full_run, tmp_path_factory):
    """Upstream 6.12 (native UFFDIO_MOVE, no series), both arches: the reference."""
    if not Path("/usr/src/linux-source-6.12.tar.xz").exists():
        pytest.fail("linux-source-6.12 is not installed (ci/setup.sh installs it)")
    out = tmp_path_factory.mktemp("ref612")
    r = orch("run", "--arch", "x86_64,arm64", "--tree", "linux-6.12", "--series", "none",
             "-o", str(out))
    return out, r


def test_upstream_612_reference(ref_612):
    """The same suite on upstream 6.12, both arches: every test passes unchanged."""
    out, r = ref_612
    assert r.returncode == 0, r.stderr[-3000:]
    suites = junit_by_suite(out / "junit.xml")
    for arch in ("x86_64", "arm64"):
        for binary in EXPECTED_BINARIES:
            s = suites[sid(arch, binary, "linux-6.12", "none")]
            assert s.failures == 0 and s.errors == 0, (arch, binary)
            props = {p.name: p.value for p in s.properties()}
            assert props["kernel_release"].startswith("6.12.")
        move = suites[sid(arch, "uffd_move", "linux-6.12", "none")]
        assert move.tests >= 20 and move.skipped <= 3


def test_compare_61_prototype_with_612_reference(full_run, ref_612, tmp_path):
    """orch compare: the 6.1 prototype against upstream, cells paired by arch; no test
    that passes on 6.1 + uffd-move may fail on the reference."""
    (base, rb), (new, rn) = full_run, ref_612
    assert rb.returncode == 0 and rn.returncode == 0
    out = tmp_path / "cmp"
    r = orch("compare", str(base), str(new), "-o", str(out))
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((out / "compare.json").read_text())
    pairs = {(p["base"], p["new"], p["by"]) for p in data["pairs"]}
    assert pairs == {(f"{a}.linux-6.1.uffd-move.default.qemu", f"{a}.linux-6.12.none.default.qemu",
                      "arch+profile") for a in ("x86_64", "arm64")}
    assert data["counts"]["regression"] == 0 and data["counts"]["unchanged"] > 50
    md = (out / "compare.md").read_text()
    for a in ("x86_64", "arm64"):
        assert f"| `{a}.linux-6.1.uffd-move.default.qemu` | `{a}.linux-6.12.none.default.qemu`" \
            " | arch+profile | 0 |" in md


@pytest.fixture(scope="module")
def pgoff_run(full_run, tmp_path_factory):
    """6.1 + uffd-move + anon-pgoff-zero (the kernel test_bisect_slow also builds),
    x86_64, vma_merge only."""
    d = tmp_path_factory.mktemp("series") / "uffd-move+anon-pgoff-zero"
    d.mkdir()
    move = ROOT / "patches" / "uffd-move"
    names = [ln.split()[0] for ln in (move / "series").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    patches = [move / n for n in names] + sorted((ROOT / "patches" / "anon-pgoff-zero")
                                                 .glob("0*.patch"))
    (d / "series").write_text("".join(f"{p}\n" for p in patches))
    out = tmp_path_factory.mktemp("pgoff")
    r = orch("run", "--series", str(d), "--test", "vma_merge", "-o", str(out))
    return out, r


def test_compare_lists_pgoff_vma_merge_regressions(full_run, pgoff_run, tmp_path):
    (base, _), (new, r) = full_run, pgoff_run
    assert r.returncode == 1, r.stderr[-3000:]
    rc = orch("compare", str(base), str(new))
    print(rc.stdout)
    assert rc.returncode == 1, rc.stdout + rc.stderr
    data = json.loads((new / "compare.json").read_text())
    x86 = "x86_64.linux-6.1.uffd-move.default.qemu"
    assert {"base": x86, "new": "x86_64.linux-6.1.uffd-move+anon-pgoff-zero.default.qemu",
            "by": "arch+tree"} in [{k: p[k] for k in ("base", "new", "by")}
                                   for p in data["pairs"]]
    regressions = sorted(c["name"] for c in data["changes"] if c["cls"] == "regression")
    ktap = (new / "x86_64" / "tests" / "vma_merge.ktap").read_text()
    failed = sorted(ln.split()[3] for ln in ktap.splitlines() if ln.startswith("not ok"))
    assert regressions == failed and failed
    assert all(c["binary"] == "vma_merge" for c in data["changes"] if c["cls"] == "regression")
    md = (new / "compare.md").read_text()
    for name in failed:
        assert f"| regression | vma_merge | {name} | pass | fail |" in md
    # the arm64 cell and x86_64's other binaries were not run: gone, not regressions
    assert any(c["cls"] == "gone" and c["base_cell"].startswith("arm64")
               for c in data["changes"])


def test_merge_real_runs(full_run, ref_612, pgoff_run, tmp_path):
    (a, _), (b, _), (c, _) = full_run, ref_612, pgoff_run
    out = tmp_path / "merged"
    r = orch("merge", str(a), str(b), str(c), "-o", str(out), "--kcidb",
             str(out / "kcidb.json"))
    print(r.stdout)
    assert r.returncode == 1, r.stderr  # the pgoff cell fails vma_merge
    res = json.loads((out / "results.json").read_text())
    assert len(res["cells"]) == 5 and res["exit_code"] == 1
    md = (out / "summary.md").read_text()
    assert "| cell | result | " in md
    for cid in (x["id"] for x in res["cells"]):
        assert f"| `{cid}` |" in md
    for t in res["tests"]:
        assert all((out / p).is_file() for p in t["logs"].values())
    root = ET.parse(out / "junit.xml").getroot()
    names = [(tc.get("classname"), tc.get("name")) for tc in root.iter("testcase")]
    assert len(names) == len(set(names)) == len(res["tests"])
    import kcidb_io
    kcidb_io.schema.LATEST.validate(json.loads((out / "kcidb.json").read_text()))


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
    s = junit_by_suite(out / "junit.xml")[sid("x86_64", "orch-boot")]
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
    hang = suites[sid("x86_64", "a_hang")]
    assert hang.errors >= 1
    cases = {c.name: c for c in hang}
    assert cases["before_hang"].is_passed
    assert "killed after 5s" in cases["timeout"].result[0].message
    ok = suites[sid("x86_64", "b_ok")]
    assert ok.failures == 0 and ok.errors == 0 and ok.tests == 2  # fine + dmesg_clean


def test_ctrl_c_mid_run(full_run, tmp_path):
    out = tmp_path / "o"
    marker = f"orch.test={uuid.uuid4().hex[:12]}"
    p = orch_popen("run", "--arch", "x86_64", "-o", str(out), "--append", marker,
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


def test_doctor_reports_kvm_verdict(full_run):
    """After a run built the x86_64 kernel, doctor probes KVM with it: its verdict is a
    real one (not "not probed yet"), and the one the run acted on (kvm exactly when it says
    KVM works). arm64 on this host is TCG."""
    out, _ = full_run
    r = orch("doctor")
    assert r.returncode == 0, r.stdout
    accel = acceleration(r.stdout)
    props = {p.name: p.value for p in junit_by_suite(out / "junit-both.xml")[
        sid("x86_64", "uffd_move_probe")].properties()}
    verdict, why = accel["x86_64"]
    assert agrees_with_run(verdict, props["accelerator"]), (accel, props["accelerator"])
    assert accel["arm64"][0] == "tcg", accel


def test_sigkill_of_orch_takes_qemu_down(full_run, tmp_path):
    out = tmp_path / "o"
    marker = f"orch.test={uuid.uuid4().hex[:12]}"
    p = orch_popen("run", "--arch", "x86_64", "-o", str(out), "--append", marker,
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
            s = suites[sid(arch, binary, profile="debug")]
            assert s.failures == 0 and s.errors == 0, (arch, binary)
            assert next(c for c in s if c.name == "dmesg_clean").is_passed
