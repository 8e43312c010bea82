"""`--target lava` through a real local LAVA dispatcher (Debian's lava-run, ci/setup.sh):
the default cell on both arches gives the same testcases and verdicts as the QEMU run of
the same kernels (the session's default run, tests/slow/conftest.py); a kernel crash in
the middle of the tests is a failure with orch's crash record; an artifact the dispatcher
cannot fetch is infrastructure (exit 3, 125 under --bisect-exit).

The kernels are the default run's (store hits); the fault tests use private --selftests
dirs of tiny binaries (tests/slow/test_faults_slow.py's), so each costs one short job.
"""

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.slow.test_faults_slow import selftests as fault_selftests
from tests.support.orch import orch

pytestmark = pytest.mark.slow

X86 = ["--arch", "x86_64"]
ROOT = Path(__file__).resolve().parents[2]


def require(program: str, setup: str) -> None:
    """A prerequisite ci/setup.sh installs: missing, the test fails (never skips)."""
    if not shutil.which(program):
        pytest.fail(f"{program} is not installed: run `{setup}`", pytrace=False)


@pytest.fixture(autouse=True)
def lava_dispatcher():
    require("lava-run", "ci/setup.sh")  # lava-dispatcher


def cases(out: Path) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(arch, binary, testcase) -> (status, kind), from results.json."""
    rec = json.loads((out / "results.json").read_text())
    arch = {c["id"]: c["arch"] for c in rec["cells"]}
    return {(arch[t["cell"]], t["binary"], t["name"]): (t["status"], t["kind"])
            for t in rec["tests"]}


@pytest.fixture(scope="module")
def lava_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lava")
    r = orch("run", "--arch", "x86_64,arm64", "--target", "lava", "-o", str(out),
             timeout=2400)
    return out, r


def test_default_cell_through_lava_matches_qemu_case_for_case(lava_run, default_qemu_run):
    out, r = lava_run
    assert r.returncode == 0, r.stderr[-4000:]
    qout, qr = default_qemu_run
    assert qr.returncode == 0, qr.stderr[-4000:]
    got, want = cases(out), cases(qout)
    assert got == want
    assert len(got) > 150  # both arches, every binary's KTAP tests and orch's checks
    rec = json.loads((out / "results.json").read_text())
    assert {c["id"] for c in rec["cells"]} == {
        "x86_64.linux-6.1.uffd-move.default.lava", "arm64.linux-6.1.uffd-move.default.lava"}
    for arch in ("x86_64", "arm64"):
        assert "orch-guest-ready" in (out / arch / "console.log").read_text()
        job = (out / arch / "lava" / "job.yaml").read_text()
        assert "orch.lava=1" in job and "file://" in job
        assert (out / arch / "tests" / "uffd_move.ktap").read_text().startswith("KTAP")
    assert (out / "junit.xml").is_file() and (out / "metadata.json").is_file()
    for arch in ("x86_64", "arm64"):  # the summary: the same counts as under QEMU
        want_line = next(ln for ln in qr.stderr.splitlines()
                         if re.match(rf"{arch}: \d+ passed, ", ln))
        assert want_line in r.stderr.splitlines(), (want_line, r.stderr[-2000:])


def test_a_kernel_crash_mid_run_is_a_failure_with_a_crash_record(tmp_path):
    st = fault_selftests(tmp_path, "crash")
    (st / "before.c").write_text('#include <stdio.h>\nint main(void)\n{\n\tprintf("KTAP version '
                                 '1\\n1..1\\nok 1 earlier\\n");\n\treturn 0;\n}\n')
    out = tmp_path / "out"
    r = orch("run", *X86, "--target", "lava", "--selftests", str(st), "-o", str(out),
             "--bisect-exit", timeout=1800)
    assert r.returncode == 1, r.stderr[-4000:]  # bad, not "cannot test"
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("orch: [x86_64] test: ")]
    assert len(line) == 1 and "kernel crashed during crash: " in line[0], r.stderr[-3000:]
    got = cases(out)
    assert got[("x86_64", "before", "earlier")] == ("pass", "ktap")
    assert got[("x86_64", "before", "dmesg_clean")] == ("pass", "dmesg_clean")
    assert got[("x86_64", "crash", "before_the_fault")] == ("pass", "ktap")
    assert got[("x86_64", "crash", "kernel_crash")] == ("fail", "crash")
    rec = json.loads((out / "results.json").read_text())
    crash = next(t for t in rec["tests"] if t["name"] == "kernel_crash")
    assert "sysrq" in crash["output"] or "Kernel panic" in crash["output"]


@pytest.fixture
def empty_web_server(tmp_path):
    """http://127.0.0.1:PORT/orch serving tmp_path/www/orch (nothing, unless a test puts it
    there): an artifact is a 404. (A port nobody listens on would do too, but LAVA retries a
    refused connection for 10 minutes.)"""
    (tmp_path / "www").mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/orch"
    server.shutdown()


def test_an_artifact_that_cannot_be_fetched_is_infrastructure(tmp_path, empty_web_server):
    for flags, code in (([], 3), (["--bisect-exit"], 125)):
        out = tmp_path / f"out{len(flags)}"
        r = orch("run", *X86, "--target", "lava", "--artifacts-url", empty_web_server,
                 "--test", "uffd_move_probe", "-o", str(out), *flags, timeout=1800)
        assert r.returncode == code, r.stderr[-4000:]
        line = [ln for ln in r.stderr.splitlines() if ln.startswith("orch: [x86_64] boot: ")]
        assert len(line) == 1 and "failed before the tests" in line[0], r.stderr[-3000:]
        got = cases(out)
        assert got == {("x86_64", "orch-boot", "boot"): ("error", "stage")}


# --- a LAVA server (lava-server, PostgreSQL, the scheduler, lava-worker), by a script ------

@pytest.fixture(scope="module")
def lava_server():
    """ci/lava-server.sh: the server with one QEMU worker on this machine; stopped after.
    Its packages come from `ci/setup.sh --lava-server` (about 5 minutes of apt): without
    them, the test fails. The script runs with this virtualenv's python3 first in PATH (as
    under an activated virtualenv), which has no Django: the script must not use it."""
    require("lava-server", "ci/setup.sh --lava-server")
    script = ROOT / "ci" / "lava-server.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run([str(script), "start"], capture_output=True, text=True, timeout=1200,
                       env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    env = dict(kv.split("=", 1) for kv in r.stdout.split("\n")[-2].split())
    yield env
    subprocess.run([str(script), "stop"], capture_output=True, timeout=120)


def test_a_lava_server_end_to_end(lava_server, default_qemu_run, tmp_path, empty_web_server):
    """Submit through the REST API, wait, read back: the same cases as the QEMU run; then
    `orch lava collect --server` of the same job; the token only in the environment."""
    (tmp_path / "www" / "orch").symlink_to(tmp_path / "out", target_is_directory=True)
    url, env = lava_server["LAVA_URL"], {"LAVA_TOKEN": lava_server["LAVA_TOKEN"],
                                         "LAVA_USER": lava_server["LAVA_USER"]}
    out = tmp_path / "out"
    r = orch("run", *X86, "--target", f"lava+{url}", "--artifacts-url", empty_web_server,
             "--test", "uffd_move_probe", "-o", str(out), env=env, timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    want = {k: v for k, v in cases(default_qemu_run[0]).items()
            if k[0] == "x86_64" and k[1] == "uffd_move_probe"}
    assert cases(out) == want and want
    job = json.loads((out / "metadata.json").read_text())["arches"]["x86_64"]["target"]
    assert job["host"] == "lava-127.0.0.1:8000" and job["lava_job"]
    r = orch("lava", "collect", "--server", url, "--job", job["lava_job"], "-o",
             str(tmp_path / "collected"), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert cases(tmp_path / "collected") == want
    r = orch("run", *X86, "--target", f"lava+{url}", "--artifacts-url", empty_web_server,
             "-o", str(tmp_path / "no-token"), env={"LAVA_TOKEN": ""})
    assert r.returncode == 2 and "no token: set LAVA_TOKEN" in r.stderr
