"""Whole-file golden outputs of `orch plan` (json, github, gitlab, names), of the `orch run`
command line every cell stands for, and of every plan error message. They hold the plan
package to its output byte for byte. After a meant change (to a plan, to the emitters, or to
ci/gitlab-jobs.yml, which the gitlab child pipeline copies), run
`pytest --regen-golden tests/plan` and review the diff (the option and the `golden`
fixture are tests/conftest.py's)."""

import shlex
from pathlib import Path

import pytest

from orchestrator.cli import main as cli
from orchestrator.plan import command, schema
from orchestrator.plan.cells import PlanError

ROOT = Path(__file__).resolve().parents[2]
PLANS = {"default": "configs/plans/default.yaml", "smoke": "configs/plans/smoke.yaml",
         "all-axes": "tests/plan/data/all-axes.yaml"}
FORMATS = {"json": "json", "github": "json", "gitlab": "yml", "names": "txt"}


def orch(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("plan", PLANS)
def test_format(plan, fmt, capsys, monkeypatch, golden):
    monkeypatch.chdir(ROOT)  # the plan path as given, and ci/gitlab-jobs.yml, are relative
    code, out, err = orch(capsys, "plan", PLANS[plan], "--format", fmt)
    assert (code, err) == (0, "")
    golden(f"{plan}.{fmt}.{FORMATS[fmt]}", out)


@pytest.mark.parametrize("side", ["base", "new"])
@pytest.mark.parametrize("plan", ["default", "smoke"])
def test_names_side(plan, side, capsys, monkeypatch, golden):
    monkeypatch.chdir(ROOT)
    code, out, err = orch(capsys, "plan", PLANS[plan], "--format", "names", "--side", side)
    assert (code, err) == (0, "")
    golden(f"{plan}.names-{side}.txt", out)


@pytest.mark.parametrize("plan", PLANS)
def test_cell_commands(plan, monkeypatch, golden):
    """`orch run --plan F --cell N -o out/N --accel tcg`, cell by cell, as the `orch run`
    words it stands for (the checkout's path written $ROOT)."""
    monkeypatch.chdir(ROOT)
    lines = []
    for cell in schema.load(PLANS[plan]).cells:
        args = cli.parser().parse_args(["run", "--plan", PLANS[plan], "--cell", cell.name,
                                        "-o", f"out/{cell.name}", "--accel", "tcg"])
        words = shlex.join(["orch", *command.cell_command(args)])
        lines.append(f"{cell.name}: {words.replace(str(ROOT), '$ROOT')}\n")
    golden(f"{plan}.argv.txt", "".join(lines))


# Every message a plan can fail with: the YAML, then what `orch plan` says. One case a line
# of the golden file's table of contents; the order of the checks shows in which error a
# plan with several faults gets.
A = "arches: [x86_64]\ntrees: [linux-6.1]\n"
BAD_PLANS = {
    "not-a-mapping": "- x86_64\n",
    "unknown-key": A + "flavours: [x]\n",
    "unknown-key-singular": A + "arch: [arm64]\n",
    "root-not-str": "root: [..]\n" + A,
    "root-not-dir": "root: nowhere\n" + A,
    "name-bad": "name: 'a b'\n" + A,
    "name-not-str": "name: 12\n" + A,
    "arches-missing": "trees: [linux-6.1]\n",
    "trees-missing": "arches: [x86_64]\n",
    "arches-not-list": "arches: x86_64\ntrees: [linux-6.1]\n",
    "arches-empty": "arches: []\ntrees: [linux-6.1]\n",
    "series-empty": A + "series: []\n",
    "arch-unknown": "arches: [sparc]\ntrees: [linux-6.1]\n",
    "arch-mapping": "arches: [{name: x86_64}]\ntrees: [linux-6.1]\n",
    "arch-number": "arches: [64]\ntrees: [linux-6.1]\n",
    "arch-twice": "arches: [x86_64, x86_64]\ntrees: [linux-6.1]\n",
    "tree-list": "arches: [x86_64]\ntrees: [[linux-6.1]]\n",
    "tree-bool": "arches: [x86_64]\ntrees: [true]\n",
    "tree-unknown-key": "arches: [x86_64]\ntrees: [{tree: linux-6.1, bsae: v6.1}]\n",
    "tree-missing": "arches: [x86_64]\ntrees: [{name: x}]\n",
    "tree-empty": "arches: [x86_64]\ntrees: ['']\n",
    "tree-not-embedded": "arches: [x86_64]\ntrees: [linux-7.0]\n",
    "tree-name-bad": "arches: [x86_64]\ntrees: [{name: 'a b', tree: linux-6.1}]\n",
    "tree-twice": "arches: [x86_64]\ntrees: [linux-6.1, {name: '6.1', tree: linux-6.12}]\n",
    "series-missing-path": A + "series: [{name: x}]\n",
    "series-no-such": A + "series: [nowhere/x]\n",
    "series-unknown-key": A + "series: [{path: none, nmae: x}]\n",
    "profile-no-name": A + "profiles: [{debug: true}]\n",
    "profile-debug-not-bool": A + "profiles: [{name: x, debug: 'yes'}]\n",
    "profile-configs-bad": A + "profiles: [{name: x, configs: [1]}]\n",
    "profile-configs-mapping": A + "profiles: [{name: x, configs: {a: b}}]\n",
    "profile-adds-nothing": A + "profiles: [{name: fast}]\n",
    "profile-name-bad": A + "profiles: [{name: 'a/b', debug: true}]\n",
    "target-board": A + "targets: [board1]\n",
    "target-bad-port": A + "targets: ['ssh://h:port']\n",
    "target-path": A + "targets: ['ssh://h/x']\n",
    "target-missing": A + "targets: [{}]\n",
    "target-qemu-name": A + "targets: [{name: qemu, target: 'ssh://h'}]\n",
    "target-name-not-str": A + "targets: [{name: 1, target: 'ssh://h'}]\n",
    "target-named-ssh-qemu": A + "targets: [{name: lab, target: qemu}]\n",
    "target-name-only": A + "targets: [{name: 'ssh://h'}]\n",
    "tests-bad": A + "tests: [vma merge]\n",
    "tests-mapping": A + "tests: {a: b}\n",
    "exclude-not-list": A + "exclude: {arch: x86_64}\n",
    "exclude-not-mapping": A + "exclude: [x86_64]\n",
    "exclude-empty": A + "exclude: [{}]\n",
    "exclude-not-axis": A + "exclude: [{flavour: x}]\n",
    "exclude-not-on-axis": A + "exclude: [{arch: arm64}]\n",
    "exclude-everything": A + "exclude: [{tree: '6.1'}]\n",
    "include-not-list": A + "include: {arch: x86_64}\n",
    "include-not-mapping": A + "include: [x86_64]\n",
    "include-unknown-key": A + "include: [{arch: x86_64, flavour: x}]\n",
    "include-bad-entry": A + "include: [{arch: sparc}]\n",
    "include-bad-tests": A + "include: [{tree: linux-6.12, tests: [a b]}]\n",
    "include-twice": A + "include: [{arch: x86_64}]\n",
    "exclude-twice": "arches: [x86_64]\ntrees: [linux-6.1, {name: '6.1-x', tree: linux-6.12}]"
                     "\nseries: [none, {name: x, path: none}]\n",
    "compare-shape": A + "compare: {base: {arch: x86_64}}\n",
    "compare-list": A + "compare: [base, new]\n",
    "compare-side-not-mapping": A + "compare: {base: x86_64, new: {tree: '6.1'}}\n",
    "compare-side-not-axis": A + "compare: {base: {flavour: x}, new: {tree: '6.1'}}\n",
    "compare-side-unknown": A + "compare: {base: {tree: '6.12'}, new: {tree: '6.1'}}\n",
    "compare-no-cell": "arches: [x86_64, arm64]\ntrees: [linux-6.1]\nexclude: [{arch: arm64}]\n"
                       "compare: {base: {arch: arm64}, new: {arch: x86_64}}\n",
    "compare-overlap": "arches: [x86_64, arm64]\ntrees: [linux-6.1]\n"
                       "compare: {base: {arch: x86_64}, new: {tree: '6.1'}}\n",
    "yaml-syntax": "arches: [x86_64\ntrees: [linux-6.1]\n",
    "yaml-tab": "arches:\n\t- x86_64\n",
}


def normal(text: str, tmp_path: Path) -> str:
    for p in (str(tmp_path.resolve()), str(tmp_path)):
        text = text.replace(p, "$TMP")
    return text.replace(str(ROOT), "$ROOT")


def test_bad_plan_messages(tmp_path, capsys, golden):
    out = []
    for name, text in BAD_PLANS.items():
        f = tmp_path / f"{name}.yaml"
        f.write_text(text)
        code, stdout, err = orch(capsys, "plan", str(f))
        out.append(f"{name}: exit {code}\n{normal(err, tmp_path)}")
        assert stdout == ""
    golden("errors.txt", "".join(out))


def test_command_messages(tmp_path, capsys, monkeypatch, golden):
    """The errors that come from the command line rather than the plan file."""
    monkeypatch.chdir(ROOT)
    (tmp_path / "bad.yml").write_text(".orch-cell: [x\n")
    (tmp_path / "nocell.yml").write_text(".orch-merge: {}\n")
    (tmp_path / "nocompare.yml").write_text(".orch-cell: {}\n.orch-merge: {}\n")
    (tmp_path / "plain.yaml").write_text(A)
    (tmp_path / "ssh.yaml").write_text(A + "targets: ['ssh://h']\n")
    d = PLANS["default"]
    cases = {
        "no-such-plan": ["plan", "nowhere"],
        "no-such-plan-path": ["plan", "nowhere/x.yaml"],
        "plan-is-a-directory": ["plan", str(tmp_path)],
        "side-not-names": ["plan", d, "--format", "json", "--side", "new"],
        "side-no-compare": ["plan", str(tmp_path / "plain.yaml"), "--format", "names",
                            "--side", "base"],
        "template-missing": ["plan", d, "--format", "gitlab", "--template", "nope.yml"],
        "template-bad-yaml": ["plan", d, "--format", "gitlab", "--template",
                              str(tmp_path / "bad.yml")],
        "template-no-cell": ["plan", d, "--format", "gitlab", "--template",
                             str(tmp_path / "nocell.yml")],
        "template-no-compare": ["plan", d, "--format", "gitlab", "--template",
                                str(tmp_path / "nocompare.yml")],
        "template-no-compare-needed": ["plan", str(tmp_path / "plain.yaml"), "--format",
                                       "gitlab", "--template", str(tmp_path / "nocompare.yml")],
        "run-plan-no-cell": ["run", "--plan", d],
        "run-cell-no-plan": ["run", "--cell", "x86_64-6.12"],
        "run-no-such-cell": ["run", "--plan", d, "--cell", "sparc-6.1"],
        "run-cell-and-arch": ["run", "--plan", d, "--cell", "x86_64-6.12", "--arch", "arm64"],
        "run-cell-and-debug": ["run", "--plan", d, "--cell", "x86_64-6.12", "--debug"],
        "run-cell-and-target": ["run", "--plan", d, "--cell", "x86_64-6.12", "--target",
                                "ssh://h"],
    }
    out = []
    for name, argv in cases.items():
        code, stdout, err = orch(capsys, *argv)
        out.append(f"{name}: exit {code}\n{normal(err, tmp_path)}")
        if name != "template-no-compare-needed":
            assert stdout == ""
    # An orch whose `run` has no --target takes no ssh target in a plan.
    try:
        schema.load(tmp_path / "ssh.yaml", cli_options=set())
    except PlanError as exc:
        out.append(f"ssh-target-without-target-option\n{normal(str(exc), tmp_path)}\n")
    golden("command-errors.txt", "".join(out))
