"""Plan files: expansion, exclusions, includes, errors, `orch run --plan/--cell`, formats."""

import json
from pathlib import Path

import pytest
import yaml

from orchestrator import options
from orchestrator.base.errors import UsageError
from orchestrator.cli import main as cli
from orchestrator.plan import axes, command, schema
from orchestrator.plan.cells import PlanError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "configs/plans/default.yaml"
DEFAULT_CELLS = ["x86_64-6.1-uffd-move", "x86_64-6.12", "arm64-6.1-uffd-move", "arm64-6.12",
                 "x86_64-6.1-uffd-move-debug"]


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_default_plan_cells():
    p = schema.load(DEFAULT)
    assert [c.name for c in p.cells] == DEFAULT_CELLS
    debug = p.cell("x86_64-6.1-uffd-move-debug")
    assert debug.profile.debug and debug.series.value == "patches/uffd-move"
    ref = p.cell("arm64-6.12")
    assert ref.tree.value == "linux-6.12" and ref.series.value == "none"
    assert [c.name for c in p.select(p.compare["base"])] == ["x86_64-6.12", "arm64-6.12"]
    assert [c.name for c in p.select(p.compare["new"])] == ["x86_64-6.1-uffd-move",
                                                           "arm64-6.1-uffd-move"]


def test_shipped_plans_load_by_name():
    assert schema.load("default").path == DEFAULT
    smoke = schema.load("smoke")
    assert [c.name for c in smoke.cells] == ["x86_64-6.1-uffd-move", "x86_64-6.12"]
    assert all(c.tests == ["uffd_move_probe", "uffd_move"] for c in smoke.cells)


def _opts(argv: list[str]):
    args = cli.parser().parse_args(argv)
    if getattr(args, "plan", None) or getattr(args, "cell", None):
        args = cli.parser().parse_args(command.cell_command(args))
    o = options.options_from(args, argv)
    o.argv = []
    return o


UFFD = str(ROOT / "patches/uffd-move")
KS = ["--kselftest", "mm:uffd-unit-tests", "--kselftest-tree", "linux-6.12"]  # every cell


@pytest.mark.parametrize("cell,hand", [
    ("x86_64-6.1-uffd-move", ["--arch", "x86_64", "--tree", "linux-6.1", "--series", UFFD]),
    ("arm64-6.1-uffd-move", ["--arch", "arm64", "--tree", "linux-6.1", "--series", UFFD]),
    ("x86_64-6.12", ["--arch", "x86_64", "--tree", "linux-6.12", "--series", "none"]),
    ("arm64-6.12", ["--arch", "arm64", "--tree", "linux-6.12", "--series", "none"]),
    ("x86_64-6.1-uffd-move-debug", ["--tree", "linux-6.1", "--series", UFFD, "--debug"]),
])
def test_cell_is_the_hand_written_run(cell, hand):
    """`orch run --plan F --cell N` builds exactly the Options of the written-out run, and
    the user's own options (output, accel) pass through."""
    extra = ["-o", "/tmp/o", "--accel", "tcg"]
    by_plan = _opts(["run", "--plan", str(DEFAULT), "--cell", cell, *extra])
    by_hand = _opts(["run", *hand, *KS, *extra])
    assert by_plan == by_hand


def test_run_plan_errors(capsys):
    assert cli.main(["run", "--plan", str(DEFAULT)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give --cell NAME" in err
    assert all(n in err for n in DEFAULT_CELLS)
    assert cli.main(["run", "--plan", str(DEFAULT), "--cell", "sparc-6.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no cell 'sparc-6.1'" in err and "x86_64-6.12" in err and str(DEFAULT) in err
    assert cli.main(["run", "--cell", "x86_64-6.12"]) == 2
    assert "--cell needs --plan" in capsys.readouterr().err
    for owned in (["--arch", "arm64"], ["--tree", "linux-6.12"], ["--series", "none"],
                  ["--debug"], ["--test", "vma_merge"], ["--base", "v6.1"]):
        assert cli.main(["run", "--plan", "default", "--cell", "x86_64-6.12", *owned]) == 2
        err = capsys.readouterr().err
        assert f"{owned[0]} cannot be combined with --plan" in err


def test_exclude_include_and_names(tmp_path):
    (tmp_path / "s1").mkdir()
    p = schema.load(write(tmp_path, """
arches: [x86_64, arm64]
trees: [linux-6.1, {name: ref, tree: linux-6.12, base: v6.12}]
series: [none, {path: s1}]
profiles: [default, debug, {name: kvm, configs: [kvm]}]
tests: [vma_merge]
exclude:
  - {tree: ref, series: s1}
  - {profile: debug, arch: arm64}
  - {profile: kvm}
include:
  - {arch: arm64, tree: "6.1", series: s1, profile: kvm, tests: [uffd_move]}
"""))
    names = [c.name for c in p.cells]
    # 2 arches x 2 trees x 2 series x 3 profiles = 24; minus ref+s1 (6), arm64+debug (the
    # 3 left of 6), kvm (the 6 left of 8) = 9; plus one include = 10.
    assert len(names) == 10 == len(set(names))
    assert "x86_64-6.1-s1-debug" in names and "x86_64-ref-debug" in names
    assert not any(n.startswith("arm64") and "debug" in n for n in names)
    assert not any("ref-s1" in n for n in names)
    inc = p.cell("arm64-6.1-s1-kvm")
    assert inc.tests == ["uffd_move"] and p.cell("x86_64-6.1").tests == ["vma_merge"]
    argv = p.cell_argv(p.cell("x86_64-ref"))
    assert argv[:6] == ["--arch", "x86_64", "--tree", "linux-6.12", "--base", "v6.12"]
    assert argv[argv.index("--series") + 1] == "none"
    a = p.cell_argv(inc)
    assert a[a.index("--series") + 1] == str(tmp_path / "s1")
    assert a[a.index("--config") + 1] == "kvm" and a[-2:] == ["--test", "uffd_move"]


def test_ssh_targets_are_cells(tmp_path):
    """A target is one more axis: `ssh://` URLs (named after the host, or by name:) next to
    qemu; each cell's command line carries the URL."""
    p = schema.load(write(tmp_path, """
arches: [x86_64]
trees: [linux-6.1]
targets: [qemu, "ssh://root@lab1:2222", {name: desk, target: "ssh://desk"}]
"""))
    assert [c.name for c in p.cells] == ["x86_64-6.1", "x86_64-6.1-lab1-2222",
                                         "x86_64-6.1-desk"]
    argv = {c.name: p.cell_argv(c) for c in p.cells}
    assert "--target" not in argv["x86_64-6.1"]
    a = argv["x86_64-6.1-lab1-2222"]
    assert a[a.index("--target") + 1] == "ssh://root@lab1:2222"
    a = argv["x86_64-6.1-desk"]
    assert a[a.index("--target") + 1] == "ssh://desk"
    # and orch run accepts what the plan emits
    assert cli.main(["run", "--dry-run", *argv["x86_64-6.1-desk"]]) == 0


def test_lava_targets_are_cells(tmp_path):
    """`lava` (the local dispatcher) and `lava+https://HOST` (a server) are targets too."""
    p = schema.load(write(tmp_path, """
arches: [x86_64]
trees: [linux-6.1]
targets: [qemu, lava, "lava+https://lava.example.org:8443"]
"""))
    assert [c.name for c in p.cells] == ["x86_64-6.1", "x86_64-6.1-lava",
                                         "x86_64-6.1-lava-lava.example.org-8443"]
    a = p.cell_argv(p.cells[1])
    assert a[a.index("--target") + 1] == "lava"
    a = p.cell_argv(p.cells[2])
    assert a[a.index("--target") + 1] == "lava+https://lava.example.org:8443"


def test_root_makes_paths_relative_to_it(tmp_path):
    (tmp_path / "repo/patches/x").mkdir(parents=True)
    (tmp_path / "repo/plans").mkdir()
    f = write(tmp_path / "repo/plans", "root: ..\narches: [x86_64]\ntrees: [linux-6.1]\n"
              "series: [patches/x]\n")
    p = schema.load(f)
    assert p.cells[0].name == "x86_64-6.1-x"
    a = p.cell_argv(p.cells[0])
    assert a[a.index("--series") + 1] == str(tmp_path / "repo/patches/x")


@pytest.mark.parametrize("text,where,what", [
    ("arches: [x86_64]\n", "trees", "missing"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\narch: [arm64]\n", "arch", "did you mean arches"),
    ("arches: [sparc]\ntrees: [linux-6.1]\n", "arches[0]", "'sparc' is not an arch"),
    ("arches: x86_64\ntrees: [linux-6.1]\n", "arches", "non-empty list"),
    ("arches: [x86_64]\ntrees: [linux-7.0]\n", "trees[0].tree", "not an embedded tree"),
    ("arches: [x86_64]\ntrees: [{tree: linux-6.1, bsae: v6.1}]\n", "trees[0].bsae",
     "unknown key"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\nseries: [nowhere/x]\n", "series[0].path",
     "no such file"),
    ("arches: [x86_64, x86_64]\ntrees: [linux-6.1]\n", "arches[1]", "listed twice"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\nexclude: [{arch: arm64}]\n", "exclude[0].arch",
     "'arm64' is not on the arches axis"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\nexclude: [{tree: '6.1'}]\n", "exclude",
     "every cell is excluded"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\nexclude: [{flavour: x}]\n", "exclude[0].flavour",
     "not an axis"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\ninclude: [{arch: x86_64}]\n", "include",
     "two cells named 'x86_64-6.1'"),
    ("arches: [x86_64]\ntrees: [{name: 'a b', tree: linux-6.1}]\n", "trees[0].name",
     "cell-name part"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\nprofiles: [{name: fast}]\n", "profiles[0]",
     "adds nothing"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\ntests: [vma merge]\n", "tests",
     "selftest binary names"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\ncompare: {base: {arch: x86_64}}\n", "compare",
     "must be {base"),
    ("arches: [x86_64, arm64]\ntrees: [linux-6.1]\ncompare: {base: {arch: x86_64}, "
     "new: {tree: '6.1'}}\n", "compare", "on both sides"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\ntargets: [board1]\n", "targets[0].target",
     "expected qemu or ssh://"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\ntargets: ['ssh://h:port']\n", "targets[0].target",
     "bad port"),
    ("arches: [x86_64]\ntrees: [linux-6.1]\ntargets: [{name: qemu, target: 'ssh://h'}]\n",
     "targets[0].name", "names the QEMU target only"),
])
def test_bad_plans_name_file_and_key(tmp_path, capsys, text, where, what):
    f = write(tmp_path, text)
    with pytest.raises(PlanError) as e:
        schema.load(f, cli_options=command.cli_option_flags())
    msg = str(e.value)
    assert msg.startswith(f"{f}: {where}: ") and what in msg and "\n" not in msg
    # The command line says it in one line, exit 2.
    assert cli.main(["plan", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and what in err[0] and str(f) in err[0]


def test_yaml_syntax_error_names_the_line(tmp_path, capsys):
    f = write(tmp_path, "arches: [x86_64\ntrees: [linux-6.1]\n")
    assert cli.main(["plan", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{f}:" in err and "not valid YAML" in err and len(err.splitlines()) == 1
    assert cli.main(["plan", str(tmp_path / "missing.yaml")]) == 2
    assert "no such plan file" in capsys.readouterr().err


def test_format_json(capsys):
    assert cli.main(["plan", "configs/plans/default.yaml", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in doc["cells"]] == DEFAULT_CELLS
    c = doc["cells"][4]
    assert c["debug"] is True and c["arch"] == "x86_64" and c["tree_spec"] == "linux-6.1"
    assert c["run"] == ("orch run --plan configs/plans/default.yaml "
                        "--cell x86_64-6.1-uffd-move-debug")
    assert doc["compare"] == {"base": ["x86_64-6.12", "arm64-6.12"],
                              "new": ["x86_64-6.1-uffd-move", "arm64-6.1-uffd-move"]}


def test_format_github(capsys):
    assert cli.main(["plan", "default", "--format", "github"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "one line, for $GITHUB_OUTPUT"
    m = json.loads(out)
    assert list(m) == ["include"]
    assert [x["cell"] for x in m["include"]] == DEFAULT_CELLS
    assert {x["arch"] for x in m["include"]} == {"x86_64", "arm64"}


def test_format_names(capsys):
    assert cli.main(["plan", "default", "--format", "names"]) == 0
    assert capsys.readouterr().out.split() == DEFAULT_CELLS
    assert cli.main(["plan", "default", "--format", "names", "--side", "new"]) == 0
    assert capsys.readouterr().out.split() == ["x86_64-6.1-uffd-move", "arm64-6.1-uffd-move"]
    assert cli.main(["plan", "default", "--format", "json", "--side", "new"]) == 2


def test_format_gitlab(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.main(["plan", "configs/plans/default.yaml", "--format", "gitlab"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert "include" not in doc, "the child pipeline must stand alone"
    template = yaml.safe_load((ROOT / "ci/gitlab-jobs.yml").read_text())
    for k, v in template.items():
        assert doc[k] == v, f"{k} copied from ci/gitlab-jobs.yml"
    jobs = {k: v for k, v in doc.items() if not k.startswith(".") and isinstance(v, dict)
            and "extends" in v}
    cells = [k for k, v in jobs.items() if v["extends"] == ".orch-cell"]
    assert cells == DEFAULT_CELLS
    assert all(jobs[c]["variables"] == {"ORCH_CELL": c} for c in cells)
    assert doc["variables"]["ORCH_PLAN"] == "configs/plans/default.yaml"
    assert [n["job"] for n in doc["merge"]["needs"]] == DEFAULT_CELLS
    assert all(n["artifacts"] for n in doc["merge"]["needs"])
    cmp = doc["compare"]
    assert cmp["variables"] == {"ORCH_BASE_CELLS": "x86_64-6.12 arm64-6.12",
                                "ORCH_NEW_CELLS": "x86_64-6.1-uffd-move arm64-6.1-uffd-move"}
    assert sorted(n["job"] for n in cmp["needs"]) == sorted(
        ["x86_64-6.12", "arm64-6.12", "x86_64-6.1-uffd-move", "arm64-6.1-uffd-move"])
    # A template file that is not there: one line, exit 2.
    assert cli.main(["plan", "configs/plans/default.yaml", "--format", "gitlab",
                     "--template", "nope.yml"]) == 2
    assert "nope.yml" in capsys.readouterr().err


def test_gitlab_without_compare_has_no_compare_job(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    f = write(tmp_path, "arches: [x86_64, arm64]\ntrees: [linux-6.1]\n")
    assert cli.main(["plan", str(f), "--format", "gitlab"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert "compare" not in doc and [n["job"] for n in doc["merge"]["needs"]] == [
        "x86_64-6.1", "arm64-6.1"]


def test_axis_table_names_real_run_options():
    """Each axis's `owns` are `orch run` option dests: a misspelt one would let the user's
    option slip past the cell's without a word (test_run_plan_errors checks a few)."""
    dests = {o.dest for o in options.options_for(options.RUN)}
    assert set(command.CELL_OWNS) <= dests
    assert [a.key for a in axes.AXES] == ["arch", "tree", "series", "profile", "target"]


def test_coverage_in_a_plan_is_orch_run_coverage(tmp_path):
    """`coverage:` at the top (every cell) or per include; true, or more files to profile.
    A coverage cell's name ends in -coverage, as its cell id's profile is `coverage`."""
    p = write(tmp_path, f"""
root: {ROOT}
arches: [x86_64, arm64]
trees: [{{name: "6.1", tree: linux-6.1}}]
series: [{{name: uffd-move, path: patches/uffd-move}}]
include:
  - {{arch: x86_64, coverage: [mm/mmap.c, mm/memory.c]}}
  - {{arch: arm64, profile: debug, coverage: true}}
""")
    plan = schema.load(p)
    assert [c.name for c in plan.cells] == [
        "x86_64-6.1-uffd-move", "arm64-6.1-uffd-move", "x86_64-6.1-uffd-move-coverage",
        "arm64-6.1-uffd-move-debug-coverage"]
    o = _opts(["run", "--plan", str(p), "--cell", "x86_64-6.1-uffd-move-coverage"])
    assert o == _opts(["run", "--tree", "linux-6.1", "--series", UFFD,
                       "--coverage=mm/memory.c,mm/mmap.c"])
    assert o.coverage == ["mm/memory.c", "mm/mmap.c"] and o.profiles == ["coverage"]
    o = _opts(["run", "--plan", str(p), "--cell", "arm64-6.1-uffd-move-debug-coverage"])
    assert o.coverage == [] and o.profiles == ["debug", "coverage"]
    assert _opts(["run", "--plan", str(p), "--cell", "arm64-6.1-uffd-move"]).coverage is None
    top = write(tmp_path, f"root: {ROOT}\narches: [x86_64]\ntrees: [linux-6.1]\n"
                          "coverage: true\n", "top.yaml")
    assert [c.name for c in schema.load(top).cells] == ["x86_64-6.1-coverage"]
    with pytest.raises(PlanError, match=r"include\[0\].coverage: must be true, false or a "
                                        r"list of C files"):
        schema.load(write(tmp_path, f"root: {ROOT}\narches: [x86_64]\ntrees: [linux-6.1]\n"
                                    "include: [{arch: x86_64, coverage: 3}]\n", "bad.yaml"))
    with pytest.raises(PlanError, match=r"coverage: '../x.c': a C file of the tree"):
        schema.load(write(tmp_path, f"root: {ROOT}\narches: [x86_64]\ntrees: [linux-6.1]\n"
                                    "coverage: [../x.c]\n", "bad2.yaml"))
    with pytest.raises(UsageError, match="--coverage cannot be combined with --plan"):
        _opts(["run", "--plan", str(p), "--cell", "x86_64-6.1-uffd-move", "--coverage"])
