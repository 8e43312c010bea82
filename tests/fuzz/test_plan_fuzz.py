"""A plan's fuzz budget: `fuzz:` gives each compare: new cell `orch fuzz` against the
compare: base cell of its arch; `orch fuzz --plan F --cell N` runs it."""

import zlib

import pytest

from orchestrator.base.paths import PROJECT
from orchestrator.plan import schema
from orchestrator.plan.cells import PlanError


def test_the_default_plan_fuzzes_the_prototype_cells_against_6_12():
    plan = schema.load("default")
    assert {c.name: c.fuzz for c in plan.cells if c.fuzz} == {
        "x86_64-6.1-uffd-move": 60.0, "arm64-6.1-uffd-move": 60.0}
    assert plan.fuzz_argv(plan.cell("arm64-6.1-uffd-move")) == [
        "--arch", "arm64", "--tree", "linux-6.1", "--series",
        str(PROJECT / "patches" / "uffd-move"), "--against", "linux-6.12",
        "--against-series", "none", "--time", "60", "--seed", "1879967398",
        "--shrink-time", "60"]
    # CI runs the same programs on every commit: the seed is the cell's (its name's CRC-32)
    assert zlib.crc32(b"arm64-6.1-uffd-move") == 1879967398


def plan(tmp_path, text):
    f = tmp_path / "p.yaml"
    f.write_text("arches: [x86_64]\ntrees: [linux-6.1, linux-6.12]\n" + text)
    return schema.load(f)


def test_fuzz_needs_a_reference(tmp_path):
    with pytest.raises(PlanError, match="fuzz: needs compare:"):
        plan(tmp_path, "fuzz: 30\n")
    with pytest.raises(PlanError, match="fuzz: -1: seconds of fuzzing"):
        plan(tmp_path, "fuzz: -1\n")
    p = plan(tmp_path, "compare: {base: {tree: '6.12'}, new: {tree: '6.1'}}\n"
             "include: [{tree: '6.1', profile: debug, fuzz: 5}]\n")
    assert {c.name: c.fuzz for c in p.cells} == {"x86_64-6.1": 0.0, "x86_64-6.12": 0.0,
                                                 "x86_64-6.1-debug": 5.0}
    with pytest.raises(PlanError, match="x86_64-6.12-debug is not a compare: new cell"):
        plan(tmp_path, "compare: {base: {tree: '6.12'}, new: {tree: '6.1'}}\n"
             "include: [{tree: '6.12', profile: debug, fuzz: 5}]\n")


def test_orch_fuzz_plan_cell(orch):
    r = orch("fuzz", "--plan", "default", "--cell", "x86_64-6.12")
    assert r.returncode == 0 and "has no fuzz budget: nothing to do" in r.stdout
    r = orch("fuzz", "--plan", "default", "--cell", "x86_64-6.1-uffd-move", "--arch", "arm64")
    assert r.returncode == 2
    assert "--arch cannot be combined with --plan: cell x86_64-6.1-uffd-move sets it" in \
        r.stderr
    # a coverage build is another kernel than the cell's: the cell decides it
    r = orch("fuzz", "--plan", "default", "--cell", "x86_64-6.1-uffd-move", "--coverage")
    assert r.returncode == 2
    assert "--coverage cannot be combined with --plan: cell x86_64-6.1-uffd-move sets it" in \
        r.stderr
    r = orch("fuzz", "--cell", "x86_64-6.1-uffd-move")
    assert r.returncode == 2 and "--cell needs --plan FILE" in r.stderr


def test_a_coverage_cell_with_a_budget_is_fuzzed_guided(tmp_path):
    """A cell that is a coverage build (`coverage:`) and has a fuzz budget runs
    `orch fuzz --coverage`: guided by the lines of the series it reaches (README)."""
    p = plan(tmp_path, "compare: {base: {tree: '6.12'}, new: {tree: '6.1'}}\n"
             "include: [{tree: '6.1', coverage: [mm/mremap.c], fuzz: 5},\n"
             "          {tree: '6.1', profile: debug, fuzz: 5}]\n")
    guided = p.fuzz_argv(p.cell("x86_64-6.1-coverage"))
    assert "--coverage=mm/mremap.c" in guided
    assert not any(w.startswith("--coverage") for w in p.fuzz_argv(p.cell("x86_64-6.1-debug")))
