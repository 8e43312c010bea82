"""rootfs's reading of ELF files (the guest's binaries and their libraries): what is static,
what a binary needs, which loader it names. Real files of this host (ci/setup.sh installs
busybox-static and bash-static)."""

import pytest

from orchestrator.base.errors import MissingToolError
from orchestrator.kernel import arch
from orchestrator.targets import rootfs


def test_static_and_dynamic_binaries_of_this_host():
    assert rootfs._is_static("/bin/busybox")
    assert rootfs._is_static("/bin/bash-static")
    assert not rootfs._is_static("/bin/ls")


def test_a_missing_file_is_not_static(tmp_path):
    """Seen failing before pyelftools: readelf's failure (exit 1, no output) read as "no
    NEEDED, no interpreter", so a file that does not exist was static."""
    assert not rootfs._is_static(str(tmp_path / "nope"))


def test_a_file_that_is_not_elf_is_not_static(tmp_path):
    """Seen failing before pyelftools, as above ("Not an ELF file" ignored)."""
    script = tmp_path / "busybox"
    script.write_text("#!/bin/sh\necho not a binary\n")
    assert not rootfs._is_static(str(script))


def test_needed_and_interp_of_a_dynamic_binary():
    assert "libc.so.6" in rootfs._needed(rootfs.Path("/bin/ls"))
    assert rootfs._interp(rootfs.Path("/bin/ls")) == "/lib64/ld-linux-x86-64.so.2"
    assert rootfs._needed(rootfs.Path("/bin/busybox")) == []
    assert rootfs._interp(rootfs.Path("/bin/busybox")) is None


def test_closure_of_something_not_elf_says_so(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("#!/bin/sh\n")
    with pytest.raises(MissingToolError, match="not an ELF file"):
        rootfs.closure(tmp_path, arch.X86_64, "/bin/tool")


class FlakyApt:
    """apt-get whose first `update` fails (a mirror caught mid-sync)."""

    def __init__(self, failures: int):
        self.failures, self.calls = failures, []

    def check(self, argv, error, what, **kw):
        self.calls.append(argv[argv.index("update") if "update" in argv else -1])
        if "update" in argv and self.failures:
            self.failures -= 1
            raise error(f"{what} failed (exit 100): E: Release file is not valid yet")


def test_apt_is_tried_once_more_and_says_why(isolated_cache):
    apt, said = FlakyApt(1), []
    root = rootfs.sysroot(arch.ARM64, apt, progress=said.append, packages=["x"], name="t")
    assert (root.parent / "complete").exists()
    assert apt.calls[:2] == ["update", "update"]
    assert said[-1] == ("rootfs arm64: apt-get update (arm64) failed (exit 100): E: Release "
                        "file is not valid yet; try 2")


def test_apt_failing_twice_is_the_error(isolated_cache):
    with pytest.raises(rootfs.InfraError, match="not valid yet"):
        rootfs.sysroot(arch.ARM64, FlakyApt(2), progress=lambda m: None, packages=["x"],
                       name="t")
