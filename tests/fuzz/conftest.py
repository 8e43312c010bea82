"""What the fuzz tests share: the executor (fuzz/orch_fuzz.c) built for this host, and a
helper that runs programs with it on the host's own kernel (THP and swap left alone: the
`keep-env` mode), so that the trace format is checked against a real kernel without QEMU."""

from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path

import pytest

from orchestrator.base.paths import FUZZ
from orchestrator.fuzz import model, trace

CFLAGS = ["-static", "-O2", "-g0", "-Wall", "-Wextra", "-Werror", "-pthread"]


def cc(src: Path, out: Path, include: Path = FUZZ) -> Path:
    r = subprocess.run(["gcc", *CFLAGS, "-I", str(include), "-o", str(out), str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def needs_uffd_move(release: str | None = None) -> None:
    """These tests run the executor on the host's own kernel, and their programs move pages
    with UFFDIO_MOVE (Linux 6.8 and later): an older host fails them, saying why."""
    release = release or platform.release()
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m or (int(m.group(1)), int(m.group(2))) < (6, 8):
        pytest.fail(f"the fuzz tests run the executor on this host's kernel and need "
                    f"UFFDIO_MOVE (Linux >= 6.8); this host runs {release}", pytrace=False)


@pytest.fixture(scope="session")
def executor(tmp_path_factory) -> Path:
    needs_uffd_move()
    return cc(FUZZ / "orch_fuzz.c", tmp_path_factory.mktemp("exec") / "orch_fuzz")


@pytest.fixture
def run_programs(executor, tmp_path):
    """run_programs([Program, ...]) -> [Outcome, ...] on the host kernel."""
    def run(programs: list[model.Program], timeout: float = 10) -> list[trace.Outcome]:
        batch = tmp_path / "batch.txt"
        batch.write_text(model.batch_text([(str(i), p) for i, p in enumerate(programs)]))
        r = subprocess.run([str(executor), "run", str(batch), str(timeout), "keep-env"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return trace.parse(r.stdout)
    return run
