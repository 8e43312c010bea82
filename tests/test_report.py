import json
import xml.etree.ElementTree as ET

from junitparser import JUnitXml

from orchestrator import ktap, report
from orchestrator.errors import BuildError, ConfigError
from orchestrator.pipeline import bisect_code, max_code
from orchestrator.testrun import Suite, dmesg_problems


def _suite():
    text = ("KTAP version 1\n1..4\nok 1 a\n# expected 1 VMA, found 2\nnot ok 2 b\n"
            "ok 3 c # SKIP nope\n")
    s = Suite("arm64", "vma_merge", duration=2.5, output=text, exit_code=1)
    parsed = ktap.parse(text)
    s.cases = parsed.results + [ktap.TestResult(f"test_{n}", "error", n, "did not report")
                                for n in parsed.missing()]
    return s


def test_junit_counts_kinds_and_properties(tmp_path):
    path = tmp_path / "junit.xml"
    report.write_junit(path, [_suite(), report.infra_suite("x86_64", "boot", "boot timeout")],
                       {"arm64": {"arch": "arm64", "kernel_release": "6.1.192",
                                  "accelerator": "tcg"}})
    xml = JUnitXml.fromfile(str(path))
    suites = {s.name: s for s in xml}
    s = suites["arm64.vma_merge"]
    assert (s.tests, s.failures, s.skipped, s.errors) == (4, 1, 1, 1)
    assert s.time == 2.5
    props = {p.name: p.value for p in s.properties()}
    assert props["kernel_release"] == "6.1.192" and props["binary"] == "vma_merge"
    b = suites["x86_64.orch-boot"]
    assert b.errors == 1
    root = ET.parse(path).getroot()
    fail = root.find(".//testcase[@name='b']/failure")
    assert fail is not None and fail.get("message") == "expected 1 VMA, found 2"
    assert not (tmp_path / "junit.xml.tmp").exists()


def test_control_characters_do_not_break_xml(tmp_path):
    s = Suite("x86_64", "t", output="bell\x07 and nul\x00")
    s.cases = [ktap.TestResult("a", "fail", message="bad\x1b[0m", diagnostics=["\x01x"])]
    report.write_junit(tmp_path / "j.xml", [s], {})
    ET.parse(tmp_path / "j.xml")


def test_metadata_json_atomic(tmp_path):
    report.write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}


def test_dmesg_problem_detection():
    assert dmesg_problems("[1.0] ok\n[2.0] WARNING: CPU: 0 PID: 1 at mm/x.c:1 f+0x1\n")
    assert dmesg_problems("BUG: KASAN: use-after-free in foo")
    assert dmesg_problems("[ 3.1] ======================================================\n"
                          "[ 3.1] WARNING: possible circular locking dependency detected")
    assert not dmesg_problems("[1.0] random: crng init done\n[2.0] virtio_net up\n")


def test_exit_code_severity_and_bisect_mapping():
    assert max_code(0, 1) == 1 and max_code(3, 1) == 3 and max_code(2, 3) == 2
    assert max_code(130, 2) == 130
    assert bisect_code(0) == 0 and bisect_code(1) == 1 and bisect_code(3) == 125
    assert bisect_code(2, ConfigError("dropped")) == 125
    assert bisect_code(2) == 128
    assert bisect_code(3, BuildError("x")) == 125
