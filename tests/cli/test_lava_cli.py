"""`orch lava collect` on lava-run logs (the format lava-run writes: one YAML flow mapping a
line), and `orch lava job`'s bad input: exit codes, outputs, one-line errors."""

import json
from pathlib import Path

import yaml

from orchestrator.kernel import arch
from orchestrator.targets.lava import job as lavajob
from tests.support.orch import orch


def line(lvl, msg):
    return json.dumps({"dt": "2026-12-03T08:23:24.9", "lvl": lvl, "msg": msg})


def result(binary, case, res):
    return line("results", {"case": case, "definition": "0_orch", "result": res, "set": binary})


def job_dir(tmp_path: Path, lines: list[str]) -> Path:
    d = tmp_path / "lava"
    d.mkdir()
    spec = lavajob.JobSpec(arch.ARM64, "file:///k", "file:///i", ["first", "crash"],
                           labels={"arch": "arm64", "tree": "linux-6.1",
                                   "series": "uffd-move", "profile": "default"})
    (d / "job.yaml").write_text(lavajob.job_yaml(spec))
    (d / "lava-run.log").write_text("\n".join(lines) + "\n")
    return d


BOOT = [line("info", "start: 1 tmpfs-deploy"), line("target", "orch-guest-ready 6.1.192+")]
FIRST = [line("target", t) for t in ("orch-lava: begin first", "KTAP version 1", "1..1",
                                     "ok 1 a", "orch-lava: stderr first",
                                     "orch-lava: end first rc=0 secs=0.5")] + [
    result("first", "a", "pass"), result("first", "dmesg_clean", "pass")]


def verdict(res, **extra):
    return line("results", {"case": "job", "definition": "lava", "result": res, **extra})


def test_collect_a_passing_job(tmp_path):
    d = job_dir(tmp_path, BOOT + FIRST + [
        line("target", "orch-lava: begin crash"), line("target", "KTAP version 1"),
        line("target", "1..1"), line("target", "ok 1 b"), line("target", "orch-lava: stderr crash"),
        line("target", "orch-lava: end crash rc=0 secs=0.1"), result("crash", "b", "pass"),
        result("crash", "dmesg_clean", "pass"), verdict("pass")])
    r = orch("lava", "collect", d, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "out/results.json").read_text())
    assert rec["cells"][0]["id"] == "arm64.linux-6.1.uffd-move.default.lava"
    assert [(t["binary"], t["name"], t["status"]) for t in rec["tests"]] == [
        ("first", "a", "pass"), ("first", "dmesg_clean", "pass"), ("crash", "b", "pass"),
        ("crash", "dmesg_clean", "pass")]
    assert (tmp_path / "out/junit.xml").is_file() and (tmp_path / "out/summary.md").is_file()


def test_collect_a_job_where_every_test_skipped_is_not_a_pass(tmp_path):
    """As `orch run` says it: nothing really ran is exit 1 for CI, 125 for git bisect."""
    skipped = [line("target", t) for t in ("orch-lava: begin {b}", "KTAP version 1", "1..1",
                                           "ok 1 m # SKIP feature missing",
                                           "orch-lava: stderr {b}",
                                           "orch-lava: end {b} rc=4 secs=0.1")]
    lines = BOOT
    for b in ("first", "crash"):
        lines = lines + [t.replace("{b}", b) for t in skipped] + [
            result(b, "m", "skip"), result(b, "dmesg_clean", "pass")]
    d = job_dir(tmp_path, lines + [verdict("pass")])
    r = orch("lava", "collect", d, "-o", tmp_path / "out")
    assert r.returncode == 1, r.stderr
    assert "no test ran (all skipped)" in r.stderr
    assert orch("lava", "collect", d, "-o", tmp_path / "o2", "--bisect-exit").returncode == 125


def test_collect_a_crash_is_a_failure_not_infrastructure(tmp_path):
    d = job_dir(tmp_path, BOOT + FIRST + [
        line("target", "orch-lava: begin crash"), line("target", "KTAP version 1"),
        line("target", "1..2"), line("target", "ok 1 before_the_fault"),
        line("target", "[   20.1] Kernel panic - not syncing: sysrq triggered crash"),
        verdict("fail", error_type="Infrastructure", error_msg="Connection closed")])
    for extra, code in (([], 1), (["--bisect-exit"], 1)):
        r = orch("lava", "collect", d, "-o", tmp_path / "out", *extra)
        assert r.returncode == code, r.stderr
    rec = json.loads((tmp_path / "out/results.json").read_text())
    got = {(t["binary"], t["name"]): (t["status"], t["kind"]) for t in rec["tests"]}
    assert got[("first", "a")] == ("pass", "ktap")
    assert got[("crash", "before_the_fault")] == ("pass", "ktap")
    assert got[("crash", "kernel_crash")] == ("fail", "crash")


def test_collect_an_unfetchable_artifact_is_infrastructure(tmp_path):
    d = job_dir(tmp_path, [line("info", "start: 1 tmpfs-deploy"), verdict(
        "fail", error_type="Infrastructure",
        error_msg="Unable to fetch 'http://127.0.0.1:9/x/bzImage': Connection refused")])
    r = orch("lava", "collect", d, "-o", tmp_path / "out")
    assert r.returncode == 3
    assert "failed before the tests: Infrastructure: Unable to fetch" in r.stderr
    rec = json.loads((tmp_path / "out/results.json").read_text())
    assert [(t["binary"], t["status"]) for t in rec["tests"]] == [("orch-boot", "error")]
    assert orch("lava", "collect", d, "-o", tmp_path / "o2", "--bisect-exit").returncode == 125


def test_collect_bad_input_is_one_line(tmp_path):
    r = orch("lava", "collect", tmp_path / "nope.log", "-o", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such file" in r.stderr
    (tmp_path / "x.log").write_text("hello\n")
    r = orch("lava", "collect", tmp_path / "x.log", "-o", tmp_path / "out")
    assert r.returncode == 2 and "not a lava-run log" in r.stderr
    r = orch("lava", "collect", "-o", tmp_path / "out")
    assert r.returncode == 2 and "give a lava-run LOG, or --server URL --job ID" in r.stderr
    assert not (tmp_path / "out").exists()


def test_job_refuses_a_target_that_is_not_lava(tmp_path):
    r = orch("lava", "job", "--target", "qemu", "-o", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.strip() == (
        "orch: usage: --target qemu: orch lava job writes LAVA jobs (--target lava or "
        "lava+https://HOST)")
    assert not (tmp_path / "out").exists()


def test_job_files_name_each_other():
    spec = lavajob.JobSpec(arch.X86_64, "file:///o/x86_64/lava/bzImage",
                           "file:///o/x86_64/lava/initramfs.cpio", ["t"])
    job = yaml.safe_load(lavajob.job_yaml(spec))
    images = job["actions"][0]["deploy"]["images"]
    assert images["kernel"]["url"].endswith("/bzImage")
    assert images["rootfs"]["url"].endswith("/initramfs.cpio")
