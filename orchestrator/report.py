"""Results out: JUnit XML (junitparser) and metadata.json, both replaced atomically so a
reader never sees half a file, and both written again as the run goes on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Properties, Skipped, TestCase, TestSuite

from .testrun import Suite


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _clean(text: str) -> str:
    # XML 1.0 cannot carry most control characters (a test may print anything).
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


def junit(suites: list[Suite], properties: dict[str, dict[str, str]]) -> JUnitXml:
    """properties: per arch, name -> value (kernel release, accelerator, tree, ...)."""
    xml = JUnitXml(name="orch")
    for s in suites:
        ts = TestSuite(s.name)
        props = dict(properties.get(s.arch, {}))
        props["binary"] = s.binary
        if s.exit_code is not None:
            props["exit_code"] = str(s.exit_code)
        ts.properties = Properties()
        for k, v in props.items():
            ts.add_property(k, _clean(str(v)))
        for t in s.cases:
            tc = TestCase(t.name, classname=s.name)
            body = _clean("\n".join(t.diagnostics))
            if t.status == "fail":
                tc.result = [Failure(_clean(t.message) or "failed")]
                tc.result[0].text = body or None
            elif t.status == "skip":
                tc.result = [Skipped(_clean(t.message) or "skipped")]
            elif t.status == "error":
                tc.result = [Error(_clean(t.message) or "error")]
                tc.result[0].text = body or None
            if body and t.status == "pass":
                tc.system_out = body
            ts.add_testcase(tc)
        ts.time = round(s.duration, 3)
        if s.output:
            ts.system_out = _clean(s.output)
        if s.dmesg:
            ts.system_err = _clean(s.dmesg)
        xml.add_testsuite(ts)
    xml.update_statistics()
    for ts, s in zip(xml, suites, strict=True):
        ts.time = round(s.duration, 3)  # update_statistics sums the (untimed) cases
    return xml


def infra_suite(arch: str, stage: str, message: str, detail: str = "") -> Suite:
    """A stage that failed before tests could run still shows up in JUnit, as an error."""
    from .ktap import TestResult

    s = Suite(arch, f"orch-{stage}")
    s.cases.append(TestResult(stage, "error", message=message,
                              diagnostics=detail.splitlines()))
    return s


def write_junit(path: Path, suites: list[Suite], properties: dict[str, dict[str, str]]) -> None:
    xml = junit(suites, properties)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(tmp), pretty=True)
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    _atomic_write(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())
