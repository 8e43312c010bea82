"""The LAVA target's pure parts: the job definitions (golden, one per arch and target), the
device dictionary tuxlava renders, the dispatcher's log read with a YAML parser, and the
guest's KTAP reading (busybox awk, as in the guest) agreeing with orch's own."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestrator.base.errors import EXIT_USAGE, MissingToolError
from orchestrator.kernel import arch
from orchestrator.targets import registry
from orchestrator.targets.lava import guest as lavaguest
from orchestrator.targets.lava import job as lavajob
from orchestrator.targets.lava.log import read_log
from orchestrator.testing import testrun

LABELS = {"arch": "x86_64", "tree": "linux-6.1", "series": "uffd-move", "profile": "default",
          "kernel_key": "0123456789abcdef0123"}


def spec(a, local: bool) -> lavajob.JobSpec:
    base_url = "file:///srv/orch/out" if local else "https://files.example.org/orch"
    return lavajob.JobSpec(a, f"{base_url}/{a.name}/lava/{a.image}",
                           f"{base_url}/{a.name}/lava/initramfs.cpio",
                           ["uffd_move", "uffd_move_probe", "vma_merge"],
                           name=f"orch {a.name} linux-6.1 uffd-move default", local=local,
                           labels={**LABELS, "arch": a.name})


@pytest.mark.parametrize("where", ["local", "server"])
@pytest.mark.parametrize("name", ["x86_64", "arm64"])
def test_job_definition(name, where, golden):
    text = lavajob.job_yaml(spec(arch.get(name), where == "local"))
    golden(f"job-{name}-{where}.yaml", text)
    job = yaml.safe_load(text)
    # what a LAVA server checks more strictly than lava-run: no no_network in its jobs
    assert ("no_network" in job["context"]) == (where == "local")
    kernel = job["actions"][0]["deploy"]["images"]["kernel"]
    assert lavajob.CMDLINE_SWITCH in kernel["image_arg"]
    assert job["actions"][1]["boot"]["prompts"] == [lavaguest.PROMPT]
    assert job["metadata"]["orch.tree"] == "linux-6.1"


@pytest.mark.parametrize("name,qemu,cpu", [("x86_64", "qemu-system-x86_64", "-cpu max"),
                                           ("arm64", "qemu-system-aarch64",
                                            "-cpu max,pauth-impdef=on")])
def test_device_dictionary_is_tuxlavas_qemu_device(name, qemu, cpu):
    d = yaml.safe_load(lavajob.device_dict(spec(arch.get(name), True)))
    params = d["actions"]["boot"]["methods"]["qemu"]["parameters"]
    assert params["command"] == qemu
    assert cpu in params["options"] and "-nic none" in params["options"]
    assert "-enable-kvm" not in params["options"]  # TCG: KVM does not work on every host
    assert "-smp 2" in params["extra"]


# lava-run's stderr, as it writes it (a crash: LAVA's verdict is Infrastructure)
LOG = (Path(__file__).parent / "data" / "lava-run.log").read_text()


def test_the_log_is_read_with_a_yaml_parser():
    out = read_log(LOG, "42")
    assert out.console == ["orch-guest-ready 6.1.192+", "orch-lava: begin probe"]
    assert out.results == [{"case": "a", "definition": "0_orch", "result": "pass",
                            "set": "probe", "starttc": 731}]
    assert out.verdict == {"result": "fail", "error_type": "Infrastructure",
                           "error_msg": "Connection closed"}
    assert out.release() == "6.1.192+" and out.tests_began
    assert out.why() == "Infrastructure: Connection closed"


def test_a_servers_log_is_a_yaml_list_of_the_same_lines():
    out = read_log("\n".join("- " + ln for ln in LOG.splitlines() if ln.startswith("{")))
    assert len(out.console) == 2 and out.verdict["error_type"] == "Infrastructure"


def test_lava_run_missing_is_one_line_exit_2(monkeypatch):
    t = registry.select("lava")
    monkeypatch.setattr(shutil, "which", lambda *a, **kw: None)
    with pytest.raises(MissingToolError) as e:
        t.check_host()
    assert str(e.value) == "lava-run not found (apt-get install lava-dispatcher)"
    assert e.value.exit_code == EXIT_USAGE


def test_a_server_needs_a_token(monkeypatch, tmp_path):
    monkeypatch.delenv("LAVA_TOKEN", raising=False)
    t = registry.select("lava+https://lab.example", artifacts_url="https://f.example/o")
    with pytest.raises(Exception, match="no token: set LAVA_TOKEN"):
        t.check_host()
    ids = tmp_path / "lavacli.yaml"
    ids.write_text("lab: {uri: 'https://lab.example/RPC2', username: me, token: s3cr3t}\n")
    monkeypatch.setenv("LAVACLI_CONFIG", str(ids))
    t = registry.select("lava+https://lab.example", artifacts_url="https://f.example/o",
                    lava_identity="lab")
    t.check_host()  # found in the identity file
    t = registry.select("lava+https://lab.example", artifacts_url="https://f.example/o",
                    lava_identity="other")
    with pytest.raises(Exception, match="no such identity"):
        t.check_host()


# --- the guest's reading of KTAP agrees with orch's (testrun.classify) ----------------------

class Res:
    def __init__(self, stdout, code):
        self.stdout, self.stderr, self.exit_code = stdout, "", code
        self.lost = self.timed_out = False


SAMPLES = [
    ("flat", "KTAP version 1\n1..3\nok 1 a\nnot ok 2 b\nok 3 c # SKIP no thp\n", 1, False),
    ("directives", "KTAP version 1\n1..4\nok 1 x # XFAIL known\nok 2 y # XPASS\n"
     "not ok 3 z # TODO later\nnot ok 4 - dash name # SKIP r\n", 0, False),
    ("missing", "KTAP version 1\n1..3\n# hello\nok 1 a\n", 0, False),
    ("exit_status", "KTAP version 1\n1..1\nok 1 a\n", 1, False),
    ("exit_xfail", "KTAP version 1\n1..1\nok 1 a\n", 2, False),
    ("skip_all", "KTAP version 1\n1..0 # SKIP no userfaultfd\n", 4, False),
    ("nested", "KTAP version 1\n1..2\n    KTAP version 1\n    1..2\n    ok 1 s1\n"
     "    not ok 2 s2\nnot ok 1 parent\nok 2 after\n", 1, False),
    ("spaces", "TAP version 13\n1..1\nok 1 name with  spaces\n", 0, False),
    ("no_plan", "KTAP version 1\n# nothing\n", 0, False),
    ("hung", "KTAP version 1\n1..2\nok 1 a\n", 137, True),
    *[(f"plain_{rc}", "hello\n", rc, False) for rc in (0, 1, 2, 3, 4, 127, 139)],
]


@pytest.mark.skipif(not shutil.which("busybox"), reason="needs busybox (the guest's awk)")
@pytest.mark.parametrize("name,stdout,rc,hung", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_the_guest_names_and_judges_cases_as_orch_does(name, stdout, rc, hung, tmp_path):
    timeout = 10.0
    want = [(c.name, {"error": "unknown"}.get(c.status, c.status))
            for c in testrun.classify(name, Res(stdout, rc), timeout if hung else 1.0, timeout)]
    got = subprocess.run(["busybox", "awk", "-v", f"name={name}", "-v", f"rc={rc}", "-v",
                          f"hung={int(hung)}", lavaguest.KTAP_AWK], input=stdout,
                         capture_output=True, text=True, check=True).stdout
    assert [tuple(ln.split(" ")) for ln in got.splitlines()] == want


def test_the_guest_script_is_valid_shell():
    script = Path(shutil.which("sh") or "/bin/sh")
    r = subprocess.run([str(script), "-n"], input=lavaguest.TEST_SCRIPT, text=True,
                       capture_output=True)
    assert r.returncode == 0, r.stderr
