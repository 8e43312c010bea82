"""Fixtures for every test: a private orch cache, orch as a subprocess, fake kernel trees,
and `golden` (whole-file comparison with a file under the test's folder's golden/, rewritten
by `pytest --regen-golden`)."""

from pathlib import Path

import pytest

from tests.support import orch as orchmod
from tests.support.host import git

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true", default=False,
                     help="rewrite the golden files (tests/*/golden/) from the current "
                     "output instead of comparing with them; review the diff")


@pytest.fixture
def golden(request):
    """`golden(name, text)`: assert that `text` is exactly the file golden/NAME beside the
    test module; under --regen-golden, write the file instead."""
    regen = request.config.getoption("--regen-golden")
    where = request.path.parent / "golden"

    def check(name: str, text: str) -> None:
        path = where / name
        if regen:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        assert path.is_file(), f"{path} is missing: run pytest --regen-golden"
        want = path.read_text()
        assert text == want, (f"{name} differs from {path} (if the change is meant, run "
                              f"pytest --regen-golden and review the diff)")

    return check


@pytest.fixture(autouse=True)
def isolated_cache(request, monkeypatch):
    """A private orch cache for every test but the slow tier's (which shares the real one,
    kernels built once): a unit test never touches the user's, asked or not. The directory
    is the test's own tmp_path/cache."""
    if request.node.get_closest_marker("slow"):
        return None
    d = request.getfixturevalue("tmp_path") / "cache"
    monkeypatch.setenv("ORCH_CACHE", str(d))
    return d


@pytest.fixture
def orch(isolated_cache):
    """Run orch as a subprocess (tests.support.orch.orch) with the private cache."""
    def run(*args, env=None, **kw):
        return orchmod.orch(*args, env={"ORCH_CACHE": str(isolated_cache), **(env or {})},
                            **kw)
    return run


@pytest.fixture
def fake_kernel_repo(tmp_path):
    """A tiny git repo that looks like a kernel tree (Makefile, Kconfig, mm/, arch/)."""
    repo = tmp_path / "linux"
    (repo / "mm").mkdir(parents=True)
    (repo / "arch").mkdir()
    (repo / "Makefile").write_text("all:\n\t@echo fake kernel\n")
    (repo / "Kconfig").write_text("mainmenu \"fake\"\nsource \"mm/Kconfig\"\n")
    (repo / "arch/Kconfig").write_text("config ARCH_FAKE\n\tbool\n")
    (repo / "mm/Kconfig").write_text("config USERFAULTFD\n\tbool \"uffd\"\n\tdepends on MMU\n")
    (repo / "mm/mmap.c").write_text("".join(f"line {i}\n" for i in range(1, 41)))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "tag", "v6.1")
    return repo


@pytest.fixture
def plain_repo(tmp_path):
    """A git repo that is not a kernel tree."""
    plain = tmp_path / "plain"
    plain.mkdir()
    git(plain, "init", "-q")
    (plain / "README").write_text("x")
    git(plain, "add", "-A")
    git(plain, "commit", "-qm", "x")
    return plain


def make_patch(repo: Path, edit, subject: str) -> str:
    """Commit `edit(repo)` and return it as a format-patch mail; then drop the commit."""
    edit(repo)
    git(repo, "commit", "-qam", subject)
    text = git(repo, "format-patch", "-1", "--stdout")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    return text
