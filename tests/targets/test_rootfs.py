"""The guest's initramfs assembled from a fake userland (no Debian packages, no readelf):
what goes in, under which names, written whole into the cache."""

import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.base.runner import Runner
from orchestrator.kernel import arch
from orchestrator.targets import rootfs
from orchestrator.targets.keys import Keys

pytestmark = pytest.mark.skipif(not shutil.which("cpio"), reason="needs cpio")


@pytest.fixture
def userland(tmp_path, monkeypatch):
    root = tmp_path / "sysroot"
    for prog in ("bin/busybox", "usr/sbin/dropbear", "lib/x86_64-linux-gnu/libc.so.6"):
        (root / prog).parent.mkdir(parents=True, exist_ok=True)
        (root / prog).write_bytes(prog.encode())
    monkeypatch.setattr(rootfs, "sysroot", lambda *a, **kw: root)
    monkeypatch.setattr(rootfs, "closure", lambda root, a, prog: {
        prog: root / prog.lstrip("/"),
        "/lib/x86_64-linux-gnu/libc.so.6": root / "lib/x86_64-linux-gnu/libc.so.6"})
    return root


def test_initramfs_holds_userland_keys_tests_and_init(tmp_path, userland, isolated_cache):
    host_key = tmp_path / "dropbear_host"
    host_key.write_bytes(b"hostkey")
    keys = Keys(tmp_path / "id", "ssh-ed25519 AAAA client", host_key, "ssh-ed25519 BBBB")
    test = tmp_path / "uffd_move"
    test.write_bytes(b"test")
    out = rootfs.build_initramfs(arch.X86_64, keys, [test], None, progress=lambda m: None)
    assert out.is_file() and out.parent.name == "initramfs"
    names = subprocess.run(["cpio", "-t", "--quiet"], stdin=out.open("rb"),
                           capture_output=True, text=True, check=True).stdout.split()
    for want in ("init", "bin/busybox", "usr/sbin/dropbear", "lib/x86_64-linux-gnu/libc.so.6",
                 "opt/orch/selftests/uffd_move", "root/.ssh/authorized_keys",
                 "etc/dropbear/dropbear_ed25519_host_key", "etc/passwd",
                 "opt/orch/lava-tests"):
        assert want in names
    # written whole: no staging directory or temporary file is left beside it
    assert sorted(p.name for p in out.parent.iterdir() if p != out
                  and not p.name.endswith(".lock")) == []
    # the same inputs: the same image, from the cache
    assert rootfs.build_initramfs(arch.X86_64, keys, [test], None,
                                  progress=lambda m: None) == out


def test_bash_static_for_the_guest(isolated_cache):
    """x86_64: the host's bash-static (ci/setup.sh installs it); arm64: the package's file
    in a download of its own (dry run: where it will be, nothing downloaded)."""
    assert rootfs._is_static("/bin/bash-static"), "bash-static: ci/setup.sh installs it"
    assert rootfs.bash_static(arch.X86_64, Runner()) == Path("/bin/bash-static")
    dry = Runner(dry_run=True)
    where = rootfs.bash_static(arch.ARM64, dry)
    assert where == isolated_cache / "sysroot/arm64-bash-static/root/bin/bash-static"
    assert not (isolated_cache / "sysroot").exists() and dry.commands == []
