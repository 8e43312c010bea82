"""The selftest compile command line: the cross compiler, static, the kernel's headers."""

import re
from pathlib import Path

import pytest

from orchestrator.base.errors import BuildError
from orchestrator.base.runner import Runner
from orchestrator.kernel import arch
from orchestrator.testing import compile as selftests


def test_selftest_compile_argv():
    argv = selftests.compile_argv("aarch64-linux-gnu-gcc", Path("/s/t.c"), Path("/o/t"),
                                  Path("/s"), Path("/h"))
    assert argv[0] == "aarch64-linux-gnu-gcc" and "-static" in argv
    assert argv[argv.index("-isystem") + 1] == "/h/include"


def test_a_compile_error_is_named_not_a_warning_that_says_error(tmp_path):
    """A real gcc run: the #warning line mentioning "error" comes first, the error after."""
    src = tmp_path / "st"
    src.mkdir()
    (src / "broken.c").write_text('#warning "error handling is not done yet"\n'
                                  "int main(void) { return 0 }\n")
    with pytest.raises(BuildError) as exc:
        selftests.build(arch.X86_64, src, tmp_path / "headers", "h", Runner(),
                        tmp_path / "log", progress=lambda _: None)
    assert "selftest broken.c does not build for x86_64: " in str(exc.value)
    assert re.search(r"/broken\.c:2:\d+: error: expected", str(exc.value)), str(exc.value)
