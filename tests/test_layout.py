"""The house rules, checked: the tiers and no import circles (import-linter, declared in
pyproject.toml), ruff with the project's settings, rooms of a bounded size, every module
saying what it is for, and every third-party import a declared dependency."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "orchestrator"
BIN = Path(sys.executable).parent
MODULES = sorted(PKG.rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 200


def _tool(name: str) -> str:
    exe = BIN / name
    if not exe.exists():
        pytest.fail(f"{name} is not installed in {BIN} (pip install -e '.[test]')")
    return str(exe)


def test_tiers_and_no_circles():
    r = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


def test_ruff_is_clean():
    r = subprocess.run([_tool("ruff"), "check", "orchestrator", "tests", "ci"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_size_and_purpose(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path}: over {MAX_MODULE_LINES} lines"
    tree = ast.parse(text)
    if path.name != "__init__.py" or text.strip():
        assert ast.get_docstring(tree), f"{path}: no docstring saying what it is for"
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            n = node.end_lineno - node.lineno + 1
            assert n <= MAX_CLASS_LINES, f"{path}: class {node.name} has {n} lines"


def _declared() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower().replace("_", "-")
            for d in meta["dependencies"]}


def test_every_third_party_import_is_declared():
    dists = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = set()
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "orchestrator":
                    continue
                owners = {d.lower().replace("_", "-") for d in dists.get(top, [top])}
                if not owners & declared:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not in [project] dependencies: {sorted(missing)}"


def cited_tests_missing(readme: str) -> list[str]:
    """The test files a README names (`tests/x/test_y.py`, or a bare `test_y.py`) that no
    file under tests/ is."""
    have = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    names = {p.rsplit("/", 1)[-1] for p in have}
    missing = []
    cited_paths = re.findall(r"(?<![\w/])((?:tests/(?:\w+/)*)?test_\w+\.py)", readme)
    for cited in sorted(set(cited_paths)):
        if cited not in have if "/" in cited else cited not in names:
            missing.append(cited)
    return missing


def test_the_readme_cites_tests_that_exist():
    assert cited_tests_missing((ROOT / "README.md").read_text()) == []
