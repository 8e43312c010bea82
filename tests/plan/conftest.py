"""Fixtures for the plan tests: `golden`, which compares a generated text with a whole file
under tests/plan/golden/ (or rewrites the file under `pytest --regen-golden tests/plan`)."""

from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser):
    # Kept local to tests/plan; a shared tests/conftest.py may define the same option, in
    # which case that one stands.
    try:
        parser.addoption("--regen-golden", action="store_true", default=False,
                         help="rewrite the golden files from the current output")
    except ValueError:
        pass


@pytest.fixture
def golden(request):
    """`golden(name, text)`: assert that text is exactly golden/NAME; under --regen-golden,
    write it there instead."""
    regen = request.config.getoption("--regen-golden", default=False)

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if regen:
            path.write_text(text)
            return
        assert path.exists(), f"{path} is missing: run pytest --regen-golden tests/plan"
        assert text == path.read_text(), (
            f"{name} differs from {path} (if the change is meant, run "
            f"pytest --regen-golden tests/plan and review the diff)")

    return check
