"""Shared by the targets tests: an UpRequest for a fake built kernel (x86_64, release
6.1.99, key abc123) and one test binary."""

import pytest

from orchestrator.base.runner import Runner
from orchestrator.kernel import arch, build
from orchestrator.targets.protocol import UpRequest


def up_request(tmp_path, a=arch.X86_64, runner=None, progress=None) -> UpRequest:
    store = tmp_path / "k"
    store.mkdir(exist_ok=True)
    (store / "bzImage").write_bytes(b"k" * 1000)
    (store / "kernel.json").write_text('{"release": "6.1.99"}')
    t = tmp_path / "uffd_move"
    t.write_bytes(b"x")
    return UpRequest(a, build.Kernel(a, "abc123", store), None, [t],
                     tmp_path / "console.log", runner or Runner(),
                     progress=progress or (lambda m: None))


@pytest.fixture
def req(tmp_path) -> UpRequest:
    return up_request(tmp_path)
