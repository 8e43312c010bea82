"""The CI templates in ci/: validated by the CI systems' own checkers where one runs here
(gitlab-ci-local's schema check, action-validator), and checked against the plan.

The GitLab pipeline also runs end to end in tests/test_ci_gitlab_slow.py. Jenkins does not
run here: its test only checks that the Jenkinsfile and the plan agree.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("ORCH_CI_TOOLS") or Path.home() / ".cache/orch-ci-tools")
BIN = TOOLS / "node_modules/.bin"


def tool(name: str) -> Path:
    p = BIN / name
    if not p.exists():
        pytest.fail(f"{p} is missing: run ci/setup.sh --ci-tools")
    return p


def plan_names(plan: str, *extra: str) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "orchestrator", "plan", plan, "--format",
                        "names", *extra], cwd=ROOT, capture_output=True, text=True, check=True)
    return r.stdout.split()


def repo_copy(dst: Path) -> Path:
    """The tracked files as they are in the working tree, in a git repository of their own
    (gitlab-ci-local reads git)."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                           check=True).stdout
    dst.mkdir()
    subprocess.run(["rsync", "-a", "--from0", "--ignore-missing-args", "--files-from=-",
                    f"{ROOT}/", f"{dst}/"], input=files, check=True)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        subprocess.run(["git", "-C", str(dst), *cmd], check=True, env=env,
                       capture_output=True)
    return dst


def gitlab_list(repo: Path, file: str | None = None) -> str:
    argv = [str(tool("gitlab-ci-local")), "--list"] + (["--file", file] if file else [])
    r = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=120)
    out = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)
    assert r.returncode == 0, out[-3000:]
    assert "json schema validated" in out, out[-3000:]
    return out


# --- GitLab ----------------------------------------------------------------------------

def test_gitlab_parent_and_child_pass_gitlab_ci_local_schema(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    out = gitlab_list(repo)
    assert re.search(r"^orch-plan\s+plan\b", out, re.M)
    assert re.search(r"^orch-cells\s+cells\b.*\[orch-plan\]", out, re.M)
    for plan in ("configs/plans/default.yaml", "configs/plans/smoke.yaml"):
        child = subprocess.run([sys.executable, "-m", "orchestrator", "plan", plan,
                                "--format", "gitlab"], cwd=repo, capture_output=True,
                               text=True, check=True).stdout
        (repo / "child.yml").write_text(child)
        out = gitlab_list(repo, "child.yml")
        names = plan_names(plan)
        for n in names:
            assert re.search(rf"^{re.escape(n)}\s+cells\b", out, re.M), (n, out)
        merge = re.search(r"^merge\s+report\s+always.*\[(.*)\]", out, re.M)
        assert merge and merge.group(1).split(",") == names
        assert re.search(r"^compare\s+report\s+always", out, re.M)


def test_gitlab_templates_cache_and_artifacts():
    jobs = yaml.safe_load((ROOT / "ci/gitlab-jobs.yml").read_text())
    cell = jobs[".orch-cell"]
    cache = cell["cache"]
    assert "$ORCH_CELL" in cache["key"], "one cache per cell: two cells never race to save one"
    assert cache["when"] == "always"
    assert set(cache["paths"]) == {".orch-cache/kernels/", ".orch-cache/ccache/",
                                   ".orch-cache/selftests/", ".orch-cache/sysroot/"}
    assert not any("work" in p or "trees" in p for p in cache["paths"]), \
        "the imported tree (1.8 GB) must not travel"
    assert 'export ORCH_CACHE="${ORCH_CACHE:-$PWD/.orch-cache}"' in \
        jobs[".orch-job"]["before_script"]
    art = cell["artifacts"]
    assert art["name"] == "orch-$ORCH_CELL" and art["when"] == "always"
    assert art["paths"] == ["out/$ORCH_CELL/", "out/$ORCH_CELL-fuzz/"]
    assert art["reports"]["junit"] == "out/$ORCH_CELL/junit.xml"
    assert "after_script" not in cell
    script = " ".join(cell["script"])
    assert '--plan "$ORCH_PLAN" --cell "$ORCH_CELL"' in script
    assert 'orch fuzz --plan "$ORCH_PLAN" --cell "$ORCH_CELL" -o "out/$ORCH_CELL-fuzz"' in script
    assert jobs[".orch-report"]["when"] == "always"
    assert jobs[".orch-merge"]["extends"] == jobs[".orch-compare"]["extends"] == ".orch-report"
    assert "orch merge out -o merged" in " ".join(jobs[".orch-merge"]["script"])
    assert "orch compare base new" in " ".join(jobs[".orch-compare"]["script"])
    # patch coverage: the merge's union, as Cobertura, shown in a merge request's diff
    assert jobs[".orch-merge"]["artifacts"]["reports"]["coverage_report"] == {
        "coverage_format": "cobertura", "path": "merged/coverage.xml"}
    assert re.search(jobs[".orch-merge"]["coverage"].strip("/"),
                     "| | **all** | 412 | 398 | 96.6% | 398/412 |").group(1) == "96.6"
    assert "reports" not in jobs[".orch-compare"]["artifacts"]
    parent = yaml.safe_load((ROOT / "ci/gitlab-ci.yml").read_text())
    trig = parent["orch-cells"]
    assert trig["trigger"]["include"] == [{"artifact": "orch-cells.yml", "job": "orch-plan"}]
    assert trig["trigger"]["strategy"] == "depend"
    assert trig["inherit"] == {"variables": False}
    assert "orch plan \"$ORCH_PLAN\" --format gitlab" in " ".join(parent["orch-plan"]["script"])
    assert yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())["include"] == [
        {"local": "ci/gitlab-ci.yml"}]


# --- GitHub ----------------------------------------------------------------------------

def test_github_workflow_passes_action_validator():
    r = subprocess.run([str(tool("action-validator")), str(ROOT / "ci/github-workflow.yml")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_action_validator_rejects_a_broken_workflow(tmp_path):
    """The validator really validates: a job that needs a job that is not there fails."""
    wf = yaml.safe_load((ROOT / "ci/github-workflow.yml").read_text())
    wf["jobs"]["merge"]["needs"] = "cells"
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(wf))
    r = subprocess.run([str(tool("action-validator")), str(bad)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "cells" in r.stdout + r.stderr


def test_github_workflow_shape():
    wf = yaml.safe_load((ROOT / "ci/github-workflow.yml").read_text())
    jobs = wf["jobs"]
    plan_steps = " ".join(s.get("run", "") for s in jobs["plan"]["steps"])
    assert 'orch plan "$ORCH_PLAN" --format github' in plan_steps
    assert "$GITHUB_OUTPUT" in plan_steps
    cell = jobs["cell"]
    assert cell["strategy"]["fail-fast"] is False
    assert cell["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    uses = {s["uses"].split("@")[0]: s for s in cell["steps"] if "uses" in s}
    assert uses["actions/upload-artifact"]["uses"].endswith("@v4")
    assert "${{ matrix.cell }}" in uses["actions/upload-artifact"]["with"]["name"]
    assert "${{ matrix.cell }}" in uses["actions/cache"]["with"]["key"]
    assert ".orch-cache/kernels" in uses["actions/cache"]["with"]["path"]
    merge = jobs["merge"]
    assert merge["if"] == "always()" and merge["needs"] == "cell"
    runs = " ".join(s.get("run", "") for s in merge["steps"])
    assert "orch merge out -o merged" in runs
    assert 'cat merged/summary.md >> "$GITHUB_STEP_SUMMARY"' in runs
    cov = [s for s in merge["steps"] if s.get("with", {}).get("name") == "orch-coverage"]
    assert cov and cov[0]["with"]["path"] == "merged/coverage.xml"
    assert wf["env"]["ORCH_PLAN"] == "configs/plans/default.yaml"


def test_github_matrix_names_are_unique_artifact_names():
    r = subprocess.run([sys.executable, "-m", "orchestrator", "plan", "default",
                        "--format", "github"], cwd=ROOT, capture_output=True, text=True,
                       check=True)
    cells = [x["cell"] for x in json.loads(r.stdout)["include"]]
    assert len(cells) == len(set(cells))
    # upload-artifact v4 refuses these in a name
    assert not any(set(c) & set('":<>|*?\r\n\\/') for c in cells)


# --- Jenkins (not run here) ------------------------------------------------------------

def test_jenkinsfile_names_every_cell_of_its_plan():
    text = (ROOT / "ci/Jenkinsfile").read_text()
    plan = re.search(r"ORCH_PLAN = '([^']+)'", text).group(1)
    names = plan_names(plan)
    cells = re.findall(r"'([^']+)'", re.search(r"def CELLS = \[(.*?)\]", text, re.S).group(1))
    axis = re.findall(r"'([^']+)'", re.search(r"name 'CELL'\s+values (.*?)\n\s*\}", text,
                                              re.S).group(1))
    assert cells == names and axis == names
    assert 'stash name: "orch-${CELL}", includes: "out/${CELL}/**, out/${CELL}-fuzz/**"' \
        in text
    assert 'orch fuzz --plan "$ORCH_PLAN" --cell "$CELL" -o "out/$CELL-fuzz"' in text
    assert 'unstash "orch-${c}"' in text and "for (c in CELLS)" in text
    post = re.search(r"post \{\s*always \{\n(.*?)\n\s*\}\n", text, re.S).group(1)
    assert 'junit testResults: "out/${CELL}/junit.xml"' in post
    assert '--plan "$ORCH_PLAN" --cell "$CELL" -o "out/$CELL"' in text
    assert "orch merge out -o merged" in text
    assert text.count("{") == text.count("}")


# --- ci/prune-kernels.py ---------------------------------------------------------------

def test_prune_kernels_keeps_what_the_run_used(tmp_path):
    store = tmp_path / "kernels"
    for d in ("x86_64-aaa", "x86_64-bbb", "arm64-ccc"):
        (store / d).mkdir(parents=True)
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"arches": {"x86_64": {"kernel": {"key": "bbb"}}}}))
    prune = [sys.executable, str(ROOT / "ci/prune-kernels.py"), str(store)]
    subprocess.run([*prune, str(meta)], check=True)
    assert sorted(p.name for p in store.iterdir()) == ["x86_64-bbb"]
    # A run that never got a kernel: nothing goes.
    (store / "x86_64-aaa").mkdir()
    meta.write_text(json.dumps({"arches": {"x86_64": {"kernel": {"key": None}}}}))
    subprocess.run([*prune, str(meta)], check=True)
    assert sorted(p.name for p in store.iterdir()) == ["x86_64-aaa", "x86_64-bbb"]
    subprocess.run([*prune, str(tmp_path / "missing.json")], check=True)
    assert len(list(store.iterdir())) == 2
