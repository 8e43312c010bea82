"""What the slow tier's modules share: the default run on both arches under QEMU (the
embedded 6.1 + patches/uffd-move), done once a session. test_run_slow.py checks it; the
LAVA tests compare their run with it, case for case, without a second QEMU run."""

import pytest

from tests.support.orch import orch


@pytest.fixture(scope="session")
def default_qemu_run(tmp_path_factory):
    """(output dir, CompletedProcess) of `orch run --arch x86_64,arm64`."""
    out = tmp_path_factory.mktemp("full")
    r = orch("run", "--arch", "x86_64,arm64", "-o", str(out), "--junit",
             str(out / "junit-both.xml"), timeout=2400)
    return out, r


@pytest.fixture(scope="session")
def coverage_run(tmp_path_factory):
    """The output dir of `orch run --coverage --arch x86_64` (6.1 + patches/uffd-move, the
    whole suite, and upstream's move kselftests from 6.12): a coverage kernel, real gcov
    data per binary, per-patch coverage. test_coverage_slow.py checks it; the results
    page's browser test opens it."""
    out = tmp_path_factory.mktemp("coverage")
    r = orch("run", "--coverage", "--arch", "x86_64", "--kselftest-tree", "linux-6.12",
             "--kselftest", "mm:uffd-unit-tests -f move", "-o", str(out), timeout=2400)
    assert r.returncode == 0, r.stderr[-4000:]
    return out
