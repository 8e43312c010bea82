"""The results record: cell ids, round trip through results.json, durations."""

import json

import pytest

from orchestrator.base.errors import UsageError
from orchestrator.results import record as results
from orchestrator.results.record import Cell, Record
from orchestrator.run import outputs
from orchestrator.testing import ktap, testrun
from orchestrator.testing.testrun import Suite


def test_cell_ids_are_readable_and_distinct():
    a = Cell("x86_64", "linux-6.1", series="uffd-move")
    assert a.id == "x86_64.linux-6.1.uffd-move.default.qemu"
    variants = [
        a,
        Cell("arm64", "linux-6.1", series="uffd-move"),
        Cell("x86_64", "linux-6.12", series="none"),
        Cell("x86_64", "linux-6.1", series="uffd-move", profile="debug", debug=True),
        Cell("x86_64", "linux", base_ref="v6.1", series="uffd-move"),
        Cell("x86_64", "linux-6.1", series="uffd-move", target_kind="ssh", target="board1"),
    ]
    assert len({c.id for c in variants}) == len(variants)
    assert Cell("x86_64", "my tree/x", series="a b").id == "x86_64.my-tree-x.a-b.default.qemu"


def test_names_from_inputs(tmp_path):
    assert outputs.tree_name("linux-6.1", "/usr/src/linux-source-6.1.tar.xz") == "linux-6.1"
    assert outputs.tree_name("/src/linux-6.5.tar.gz", "/src/linux-6.5.tar.gz") == "linux-6.5"
    assert outputs.tree_name("~/src/linux", "/home/u/src/linux") == "linux"
    d = tmp_path / "uffd-move"
    d.mkdir()
    (d / "series").write_text("")
    assert outputs.series_name(str(d), 5) == "uffd-move"
    assert outputs.series_name(str(d / "series"), 5) == "uffd-move"
    assert outputs.series_name("none", 0) == "none"
    assert outputs.profile_name([], []) == "default"
    assert outputs.profile_name(["debug"], ["/x/no-mce.config"]) == "debug+no-mce"


def _suite(text, duration=3.0, binary="vma_merge"):
    s = Suite("x86_64", binary, duration=duration, output=text)
    s.cases = ktap.parse(text).results + [ktap.TestResult("dmesg_clean", "pass",
                                                          kind="dmesg_clean")]
    return s


def test_durations_from_ktap_time_lines_else_split_and_labelled():
    timed = _suite("KTAP version 1\n1..2\n# time=250.000ms\nok 1 a\n# time=1.5s\nok 2 b\n")
    cases = testrun.record_cases("c", timed, "selftests/vma_merge.c", {})
    by = {c.name: c for c in cases}
    assert by["a"].duration == 0.25 and by["a"].duration_source == "ktap"
    assert by["b"].duration == 1.5
    assert by["dmesg_clean"].kind == "dmesg_clean"
    untimed = _suite("KTAP version 1\n1..2\nok 1 a\nok 2 b\n", duration=3.0)
    by = {c.name: c for c in testrun.record_cases("c", untimed, "", {})}
    assert by["a"].duration == 1.5 and by["a"].duration_source == "binary-split"


def test_time_line_is_not_the_failure_message():
    p = ktap.parse("KTAP version 1\n1..1\n# setting up\n# expected 3 got 4\n# time=2ms\n"
                   "not ok 1 x\n")
    assert p.results[0].message == "expected 3 got 4"
    assert p.results[0].diagnostics == ["setting up", "expected 3 got 4"]


def test_record_round_trip_and_exit_code(tmp_path):
    ok = Cell("x86_64", "linux-6.1", series="uffd-move", exit_code=0)
    bad = Cell("arm64", "linux-6.1", series="uffd-move", exit_code=3)
    rec = Record(cells=[ok, bad])
    rec.tests = testrun.record_cases(ok.id, _suite("KTAP version 1\n1..1\nok 1 a\n"),
                                         "selftests/vma_merge.c", {"output": "x"})
    results.write(tmp_path / "results.json", rec)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["schema"] == "orch-results" and data["schema_version"] == 1
    assert data["exit_code"] == 3 and data["status"] == "error"
    assert data["cells"][0]["id"] == ok.id
    t = data["tests"][0]
    assert {k: t[k] for k in ("cell", "binary", "name", "status", "kind", "file")} == {
        "cell": ok.id, "binary": "vma_merge", "name": "a", "status": "pass", "kind": "ktap",
        "file": "selftests/vma_merge.c"}
    back = results.load(tmp_path / "results.json")
    assert back.to_json() == rec.to_json()
    assert back.counts(ok.id) == {"pass": 2, "fail": 0, "skip": 0, "error": 0}


def test_running_cell_has_no_exit_code_yet():
    assert Record(cells=[Cell("x86_64", "t"), Cell("arm64", "t", exit_code=0)]).exit_code \
        is None


@pytest.mark.parametrize("content, msg", [
    ("{", "cannot read results"),
    ('{"a": 1}', "not an orch results file"),
    ('{"schema": "orch-results", "schema_version": 99, "cells": [], "tests": []}', "newer"),
    ('{"schema": "orch-results", "schema_version": 1, "cells": [], "tests": '
     '[{"cell": "nope", "binary": "b", "name": "n", "status": "pass"}]}', "unknown cell"),
    ('{"schema": "orch-results", "schema_version": 1, "cells": [], "tests": '
     '[{"cell": "c", "binary": "b", "name": "n", "status": "ok"}]}', "has status 'ok'"),
])
def test_foreign_or_broken_results_are_usage_errors(tmp_path, content, msg):
    p = tmp_path / "results.json"
    p.write_text(content)
    with pytest.raises(UsageError, match=msg):
        results.load(p)
