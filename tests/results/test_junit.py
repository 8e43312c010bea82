import xml.etree.ElementTree as ET

from junitparser import JUnitXml

from orchestrator.base.errors import BuildError, ConfigError, bisect_code
from orchestrator.base.errors import worst as max_code
from orchestrator.results import junit as report
from orchestrator.results.record import Cell, Record
from orchestrator.testing import ktap, testrun
from orchestrator.testing.testrun import Suite, dmesg_problems


def _suite():
    text = ("KTAP version 1\n1..4\n# time=12.5ms\nok 1 a\n# b: unexpected layout\n"
            "#   expected 1 VMA\n#   found 2\nnot ok 2 b\nok 3 c # SKIP nope\n")
    s = Suite("arm64", "vma_merge", duration=2.5, output=text, exit_code=1)
    parsed = ktap.parse(text)
    s.cases = parsed.results + [ktap.TestResult(f"test_{n}", "error", n, "did not report",
                                                kind="missing") for n in parsed.missing()]
    return s


def _record(*suites_by_cell):
    rec = Record()
    for cell, suites in suites_by_cell:
        rec.cells.append(cell)
        for s in suites:
            rec.tests += testrun.record_cases(cell.id, s, f"selftests/{s.binary}.c",
                                                  {"output": f"{s.arch}/tests/{s.binary}.ktap"})
    return rec


def test_junit_counts_kinds_and_properties(tmp_path):
    path = tmp_path / "junit.xml"
    arm = Cell("arm64", "linux-6.1", series="uffd-move", kernel_release="6.1.192",
               accelerator="tcg", exit_code=1)
    x86 = Cell("x86_64", "linux-6.1", series="uffd-move", exit_code=3)
    rec = _record((arm, [_suite()]),
                  (x86, [testrun.infra_suite("x86_64", "boot", "boot timeout")]))
    report.write_junit(path, rec)
    xml = JUnitXml.fromfile(str(path))
    suites = {s.name: s for s in xml}
    s = suites["arm64.linux-6.1.uffd-move.default.qemu.vma_merge"]
    assert (s.tests, s.failures, s.skipped, s.errors) == (4, 1, 1, 1)
    props = {p.name: p.value for p in s.properties()}
    assert props["kernel_release"] == "6.1.192" and props["binary"] == "vma_merge"
    assert props["cell"] == arm.id and props["arch"] == "arm64"
    b = suites["x86_64.linux-6.1.uffd-move.default.qemu.orch-boot"]
    assert b.errors == 1
    root = ET.parse(path).getroot()
    fail = root.find(".//testcase[@name='b']")
    assert fail.get("classname") == "arm64.linux-6.1.uffd-move.default.qemu.vma_merge"
    assert fail.get("file") == "selftests/vma_merge.c"
    # first failing line, not the last diagnostic
    assert fail.find("failure").get("message") == "b: unexpected layout"
    assert "found 2" in fail.find("system-out").text
    assert "output=arm64/tests/vma_merge.ktap" in fail.find("system-out").text
    a = root.find(".//testcase[@name='a']")
    assert float(a.get("time")) == 0.0125  # the test's own time= line
    assert root.find(".//testcase[@name='c']/skipped").get("message") == "nope"
    assert not (tmp_path / "junit.xml.tmp").exists()


def test_control_characters_do_not_break_xml(tmp_path):
    s = Suite("x86_64", "t", output="bell\x07 and nul\x00")
    s.cases = [ktap.TestResult("a", "fail", message="bad\x1b[0m", diagnostics=["\x01x"])]
    report.write_junit(tmp_path / "j.xml", _record((Cell("x86_64", "t"), [s])))
    ET.parse(tmp_path / "j.xml")


def test_system_out_is_capped_keeping_the_tail(tmp_path):
    s = Suite("x86_64", "t", duration=1.0)
    lines = [f"line {i:06d} " + "x" * 90 for i in range(2000)]  # ~200 KiB
    s.cases = [ktap.TestResult("dmesg_clean", "fail", message="WARNING: x", diagnostics=lines,
                               kind="dmesg_clean")]
    report.write_junit(tmp_path / "j.xml", _record((Cell("x86_64", "t"), [s])))
    out = ET.parse(tmp_path / "j.xml").getroot().find(".//testcase/system-out").text
    assert 60 * 1024 < len(out.encode()) < 66 * 1024
    assert "line 001999" in out and "line 000000" not in out and "bytes cut" in out


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
