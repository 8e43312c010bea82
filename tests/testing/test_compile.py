"""The selftest compile command line: the cross compiler, static, the kernel's headers."""

from pathlib import Path

from orchestrator.testing import compile as selftests


def test_selftest_compile_argv():
    argv = selftests.compile_argv("aarch64-linux-gnu-gcc", Path("/s/t.c"), Path("/o/t"),
                                  Path("/s"), Path("/h"))
    assert argv[0] == "aarch64-linux-gnu-gcc" and "-static" in argv
    assert argv[argv.index("-isystem") + 1] == "/h/include"
