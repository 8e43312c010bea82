"""CLI tests against fakes: bad input gives one clear line and the documented exit code."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.host import git
from tests.support.orch import orch, orch_popen

# `orch --help` order; each is a module of orchestrator/cli.
COMMANDS = ["run", "boot", "bisect", "fuzz", "plan", "merge", "compare", "report", "gc", "doctor",
            "lava"]


@pytest.fixture
def cache_env(isolated_cache):
    return {"ORCH_CACHE": str(isolated_cache)}


def test_unknown_arch(cache_env, tmp_path):
    r = orch("run", "--arch", "mips", "-o", str(tmp_path / "o"), env=cache_env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == \
        ["orch: usage: --arch: unknown arch 'mips': choose from x86_64, arm64 "
         "(see `orch run --help`)"]


def test_tree_not_a_kernel_tree(cache_env, tmp_path, plain_repo):
    plain = plain_repo
    r = orch("run", "--tree", str(plain), "-o", str(tmp_path / "o"), env=cache_env)
    assert r.returncode == 2, r.stderr
    assert "not a kernel tree (Makefile missing)" in r.stderr
    # logs/metadata are still written
    assert (tmp_path / "o" / "metadata.json").exists()
    assert (tmp_path / "o" / "junit.xml").exists()
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["exit_code"] == 2 and res["cells"][0]["exit_code"] == 2
    assert res["cells"][0]["id"] == "x86_64.plain.none.default.qemu"
    err = res["tests"][0]
    assert err["status"] == "error" and err["kind"] == "stage"
    assert "not a kernel tree" in err["message"]


def test_tree_that_does_not_exist(cache_env, tmp_path):
    r = orch("run", "--tree", str(tmp_path / "nope"), env=cache_env)
    assert r.returncode == 2 and "no such file or directory" in r.stderr


def test_base_that_does_not_exist(cache_env, fake_kernel_repo, tmp_path):
    r = orch("run", "--tree", str(fake_kernel_repo), "--base", "v9.9", "-o",
             str(tmp_path / "o"), env=cache_env)
    assert r.returncode == 2
    assert "--base v9.9: no such commit" in r.stderr


def test_series_naming_missing_file(cache_env, tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / "series").write_text("0001-a.patch\n")
    r = orch("run", "--series", str(d), env=cache_env)
    assert r.returncode == 2
    assert f"{d}/series:1: patch file 0001-a.patch does not exist" in r.stderr


def test_empty_and_non_patch_file(cache_env, tmp_path):
    empty = tmp_path / "empty.patch"
    empty.write_text("")
    r = orch("run", "--series", str(empty), env=cache_env)
    assert r.returncode == 2 and "patch empty.patch is empty" in r.stderr
    junk = tmp_path / "notes.txt"
    junk.write_text("Just some notes, no diff.\n")
    r = orch("run", "--series", str(junk), env=cache_env)
    assert r.returncode == 2 and "notes.txt is not a patch" in r.stderr


def test_missing_qemu_names_debian_package(cache_env, tmp_path):
    # A PATH with everything orch needs except the arm64 QEMU.
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("git", "make", "flex", "bison", "bc", "cpio", "readelf", "dropbearconvert",
                 "gcc", "aarch64-linux-gnu-gcc", "apt-get", "dpkg-deb", "qemu-system-x86_64"):
        real = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if real:
            (bin_ / tool).symlink_to(real)
    r = orch("run", "--arch", "arm64", env={**cache_env, "PATH": str(bin_)})
    assert r.returncode == 2
    assert "qemu-system-aarch64 not found (apt-get install qemu-system-arm)" in r.stderr


def test_missing_fragment(cache_env):
    r = orch("run", "--config", "/nonexistent.config", env=cache_env)
    assert r.returncode == 2 and "--config /nonexistent.config: no such fragment" in r.stderr


def test_dry_run_prints_commands(cache_env, fake_kernel_repo, tmp_path):
    r = orch("run", "--tree", str(fake_kernel_repo), "--dry-run", "--arch", "x86_64,arm64",
             "-o", str(tmp_path / "o"), env=cache_env)
    assert r.returncode == 0, r.stderr
    assert "tinyconfig" in r.stderr and "olddefconfig" in r.stderr
    assert "CROSS_COMPILE=aarch64-linux-gnu-" in r.stderr
    assert "qemu-system-x86_64" in r.stderr and "qemu-system-aarch64" in r.stderr
    assert "hostfwd=tcp:127.0.0.1:" in r.stderr


def test_help_lists_commands():
    """Every command is an entry of its own in `orch --help` (a word of another command's
    help, or of the epilog, does not count), and each answers its own --help."""
    r = orch("--help")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    # the description says what orch is for, not what the cli module does
    assert lines[lines.index("") + 1].startswith("orch: prototype kernel patches"), r.stdout
    assert f"{{{','.join(COMMANDS)}}}" in r.stdout  # the usage line's choices, in order
    start = lines.index("positional arguments:") + 2
    entries = [m.group(1) for ln in lines[start:]
               if (m := re.match(r"^    (\S+)\s{2,}\S", ln))]
    assert entries == COMMANDS, r.stdout
    for cmd in COMMANDS:
        sub = orch(cmd, "--help")
        assert sub.returncode == 0, (cmd, sub.stderr)
        assert sub.stdout.startswith(f"usage: orch {cmd} "), (cmd, sub.stdout[:200])


def test_user_checkout_untouched_by_dry_run(cache_env, fake_kernel_repo, tmp_path):
    before = git(fake_kernel_repo, "status", "--porcelain", "--ignored")
    head = git(fake_kernel_repo, "rev-parse", "HEAD")
    r = orch("run", "--tree", str(fake_kernel_repo), "--dry-run", "-o", str(tmp_path / "o"),
             env=cache_env)
    # The dry run went through (an orch that dies early leaves the checkout alone too) ...
    assert r.returncode == 0, r.stderr[-2000:]
    assert "tinyconfig" in r.stderr and "qemu-system-x86_64" in r.stderr, r.stderr[-2000:]
    # ... and left the user's checkout as it was.
    assert git(fake_kernel_repo, "status", "--porcelain", "--ignored") == before
    assert git(fake_kernel_repo, "rev-parse", "HEAD") == head
    assert not (Path(fake_kernel_repo) / ".git" / "worktrees").exists()


def _wait_for_stage(meta: Path, arch: str | None, stage: str, timeout: float = 60) -> None:
    import json
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = json.loads(meta.read_text())
            rec = m["apply"] if arch is None else m["arches"][arch]["stages"].get(stage, {})
            if rec.get("status") == "running":
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"stage {stage} never ran")


def test_sigterm_stops_every_arch(cache_env, fake_kernel_repo, tmp_path):
    """One SIGTERM while x86_64 is in a stage: the run stops; arm64 is never started."""
    import json
    import signal

    from junitparser import JUnitXml

    out = tmp_path / "o"
    p = orch_popen("run", "--tree", str(fake_kernel_repo), "--arch", "x86_64,arm64", "-o",
                   str(out), stderr=subprocess.PIPE, text=True,
                   env={**cache_env, "ORCH_TEST_HOLD": "config"})
    _wait_for_stage(out / "metadata.json", "x86_64", "config")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "orch: interrupted by SIGTERM; partial results written to" in err
    assert "arm64" not in err.split("interrupted by SIGTERM")[0]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "interrupted" and meta["exit_code"] == 130
    assert meta["apply"]["status"] == "ok"
    assert meta["arches"]["x86_64"]["stages"]["config"]["status"] == "interrupted"
    assert "apply" not in meta["arches"]["x86_64"]["stages"]
    assert {r["status"] for r in meta["arches"]["arm64"]["stages"].values()} == {"not run"}
    suites = {s.name: s for s in JUnitXml.fromfile(str(out / "junit.xml"))}
    assert suites["x86_64.linux.none.default.qemu.orch-interrupted"].errors == 1
    assert suites["arm64.linux.none.default.qemu.orch-interrupted"].errors == 1


def test_internal_error_aborts_a_bisection(cache_env, fake_kernel_repo, tmp_path):
    """An orch bug: exit 3, but 128 under --bisect-exit (git bisect would read 3 as bad)."""
    import json

    env = {**cache_env, "ORCH_TEST_INTERNAL_ERROR": "apply"}
    for flags, code in (([], 3), (["--bisect-exit"], 128)):
        out = tmp_path / f"o{code}"
        r = orch("run", "--tree", str(fake_kernel_repo), "-o", str(out), *flags, env=env)
        assert r.returncode == code, r.stderr
        assert r.stderr.strip().splitlines()[-1] == (
            "orch: internal error: InternalError: ORCH_TEST_INTERNAL_ERROR=apply (test hook)")
        meta = json.loads((out / "metadata.json").read_text())
        assert meta["status"] == "internal-error"
        assert meta["apply"]["status"] == "failed"
        assert "orch-internal" in (out / "junit.xml").read_text()


def test_missing_tool_is_not_labelled_doctor(cache_env, tmp_path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("git", "make", "flex", "bison", "bc", "cpio", "readelf", "dropbearconvert",
                 "gcc", "busybox", "dropbear"):
        real = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if real:
            (bin_ / tool).symlink_to(real)
    r = orch("run", "--arch", "x86_64", env={**cache_env, "PATH": str(bin_)})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == \
        "orch: host: qemu-system-x86_64 not found (apt-get install qemu-system-x86)"


def test_arch_failure_keeps_the_apply_stage_ok(cache_env, fake_kernel_repo, tmp_path):
    """The fake tree cannot configure: x86_64 fails in config; apply passed and says so."""
    import json

    out = tmp_path / "o"
    r = orch("run", "--tree", str(fake_kernel_repo), "-o", str(out), env=cache_env)
    assert r.returncode in (2, 3), r.stderr
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["apply"]["status"] == "ok"
    stages = meta["arches"]["x86_64"]["stages"]
    assert "apply" not in stages
    assert stages["config"]["status"] == "failed"
    assert all(stages[s]["status"] == "skipped" for s in ("build", "boot", "test"))


@pytest.mark.parametrize("args,says", [
    (["--kselftest", "mm:cow,@mmap"], "--kselftest mm:cow,@mmap: mix of programs and "
     "@categories"),
    (["--kselftest-tree", "linux-6.12"], "--kselftest-tree linux-6.12: give --kselftest "
     "COLLECTION[:PROGRAM] too"),
    (["--kselftest-timeout", "60"], "--kselftest-timeout: give --kselftest"),
    (["--selftests", "none"], "--selftests none: and no --kselftest: there is nothing to run"),
])
def test_kselftest_bad_input_is_one_line_and_exit_2(cache_env, tmp_path, args, says):
    out = tmp_path / "o"
    r = orch("run", *args, "-o", str(out), env=cache_env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"orch: usage: {says}"), lines
    assert (out / "junit.xml").is_file() and (out / "results.json").is_file()


def test_kselftest_dry_run_names_the_build(cache_env, fake_kernel_repo, tmp_path):
    r = orch("run", "--tree", str(fake_kernel_repo), "--dry-run", "--arch", "arm64",
             "--kselftest", "mm:uffd-unit-tests", "-o", str(tmp_path / "o"), env=cache_env)
    assert r.returncode == 0, r.stderr
    assert '+ make -C tools/testing/selftests TARGETS="mm" install (arm64)' in r.stdout + r.stderr

def test_uncommitted_changes_are_a_final_change_unless_committed(cache_env, fake_kernel_repo,
                                                                 tmp_path):
    """A dirty checkout: its edits are tested after the series, named `none+dirty` with
    their own hash, saved as dirty.diff, said in one line; --committed leaves them out;
    the checkout is never modified. (The fake tree then fails in config: enough here.)"""
    repo = fake_kernel_repo
    (repo / "mm/mmap.c").write_text("edited\n")
    (repo / "mm/new.c").write_text("untracked\n")
    before = git(repo, "status", "--porcelain", "--ignored")
    out = tmp_path / "dirty"
    r = orch("run", "--tree", str(repo), "-o", str(out), env=cache_env)
    assert r.returncode in (2, 3), r.stderr
    notice = [ln for ln in r.stderr.splitlines() if "uncommitted changes" in ln]
    assert len(notice) == 1 and "(2 files: mm/mmap.c, mm/new.c)" in notice[0], r.stderr
    diff = (out / "dirty.diff").read_bytes()
    assert b"+edited" in diff and b"+untracked" in diff
    rec = json.loads((out / "results.json").read_text())
    cell = rec["cells"][0]
    assert cell["id"] == "x86_64.linux.none+dirty.default.qemu"
    assert cell["series"] == "none+dirty"
    import hashlib
    assert cell["dirty_hash"] == hashlib.sha256(diff).hexdigest()
    assert cell["series_hash"] and cell["head_commit"] != cell["base_commit"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["inputs"]["tree"]["dirty"]["files"] == ["mm/mmap.c", "mm/new.c"]
    assert git(repo, "status", "--porcelain", "--ignored") == before

    out2 = tmp_path / "committed"
    r = orch("run", "--tree", str(repo), "--committed", "-o", str(out2), env=cache_env)
    assert "testing the uncommitted" not in r.stderr
    assert not (out2 / "dirty.diff").exists()
    cell = json.loads((out2 / "results.json").read_text())["cells"][0]
    assert cell["id"] == "x86_64.linux.none.default.qemu" and cell["dirty_hash"] == ""
    assert cell["head_commit"] == cell["base_commit"]
    assert "--committed" in json.loads((out2 / "metadata.json").read_text())["reproduce"]
    assert git(repo, "status", "--porcelain", "--ignored") == before
