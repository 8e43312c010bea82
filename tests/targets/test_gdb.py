"""`orch boot --gdb`: QEMU's gdbstub on the loopback only, the gdb command orch prints, and
--gdb refused where it cannot work (`orch run`, a machine over SSH)."""

import json
from pathlib import Path

import pytest

from orchestrator import options
from orchestrator.base.errors import UsageError
from orchestrator.kernel import arch, build
from orchestrator.targets import qemu, registry
from orchestrator.targets.protocol import UpRequest
from tests.support.orch import orch


@pytest.mark.parametrize("a", [arch.X86_64, arch.ARM64], ids=lambda a: a.name)
def test_gdbstub_binds_loopback_and_the_kernel_has_no_kaslr(a):
    t = registry.make(options.make(gdb=True, append="loglevel=7"))
    argv = qemu.qemu_argv(a, t.spec(Path("k"), Path("i"), 10022, "tcg", 40001))
    assert argv[argv.index("-gdb") + 1] == "tcp:127.0.0.1:40001"
    assert argv[argv.index("-append") + 1].endswith("loglevel=7 nokaslr")
    plain = qemu.qemu_argv(a, registry.make(options.make()).spec(Path("k"), None, 1, "tcg", None))
    assert "-gdb" not in plain and "nokaslr" not in plain[plain.index("-append") + 1]


def test_gdb_command_line():
    assert qemu.gdb_argv(Path("/s/vmlinux"), 40001) == [
        "gdb-multiarch", "/s/vmlinux", "-ex", "target remote 127.0.0.1:40001"]
    assert qemu.gdb_argv(Path("/s/vmlinux"), 1, Path("/s/gdb/vmlinux-gdb.py"))[2:6] == [
        "-ex", "add-auto-load-safe-path /s/gdb", "-ex", "source /s/gdb/vmlinux-gdb.py"]


def test_the_announced_line_names_the_stored_vmlinux(isolated_cache):
    k = build.store_for(arch.ARM64, "k" * 20)
    k.store.mkdir(parents=True)
    k.gdb_vmlinux.write_bytes(b"\x7fELF")
    said = []
    req = UpRequest(arch.ARM64, k, None, [], Path("/dev/null"), None, notice=said.append)
    registry.make(options.make(gdb=True)).announce_gdb(req, 40001)
    assert said[0] == (f"[arm64] gdb: gdb-multiarch {k.gdb_vmlinux} -ex "
                       f"'target remote 127.0.0.1:40001'")
    assert "CONFIG_GDB_SCRIPTS=y" in said[1]  # no scripts stored: how to get them


def test_gdb_is_for_qemu_and_for_boot_only(isolated_cache):
    with pytest.raises(UsageError, match="^--gdb is for --target qemu$"):
        registry.make(options.make(gdb=True, target="ssh://root@board"))
    r = orch("run", "--gdb", env={"ORCH_CACHE": str(isolated_cache)})
    assert r.returncode == 2 and "unrecognized arguments: --gdb" in r.stderr


def test_dry_run_shows_the_gdbstub(isolated_cache, fake_kernel_repo, tmp_path):
    r = orch("boot", "--gdb", "--tree", str(fake_kernel_repo), "--dry-run", "-o",
             str(tmp_path / "o"), env={"ORCH_CACHE": str(isolated_cache)})
    assert r.returncode == 0, r.stderr
    assert "-gdb tcp:127.0.0.1:" in r.stderr and "nokaslr" in r.stderr


# --- the store keeps what gdb reads --------------------------------------------------------

def _builddir(tmp_path: Path, k: build.Kernel, scripts: bool) -> Path:
    bd = tmp_path / "build"
    (bd / "scripts/gdb/linux").mkdir(parents=True)
    (bd / "vmlinux").write_bytes(b"\x7fELF...Linux version 6.1 (orch@" + k.stamp.encode()
                                 + b") (gcc)...")
    if scripts:
        src = tmp_path / "src"
        src.mkdir()
        (src / "vmlinux-gdb.py").write_text("import linux.constants\n")
        (src / "utils.py").write_text("# utils\n")
        (bd / "vmlinux-gdb.py").symlink_to(src / "vmlinux-gdb.py")
        (bd / "scripts/gdb/linux/utils.py").symlink_to(src / "utils.py")
        (bd / "scripts/gdb/linux/constants.py").write_text("LX_CONFIG_MMU = 1\n")
    return bd


def _stored(k: build.Kernel) -> build.Kernel:
    k.store.mkdir(parents=True)
    (k.store / "kernel.json").write_text(json.dumps({"key": k.key}))
    return k


def test_a_kernel_stored_before_vmlinux_was_kept_adopts_its_build_dirs(isolated_cache,
                                                                       tmp_path):
    k = _stored(build.store_for(arch.X86_64, "a" * 20))
    bd = _builddir(tmp_path, k, scripts=True)
    build.adopt(k, bd)
    assert k.gdb_vmlinux.read_bytes() == (bd / "vmlinux").read_bytes()
    assert k.gdb_scripts == k.store / "gdb/vmlinux-gdb.py"
    linux = k.store / "gdb/scripts/gdb/linux"
    assert not (linux / "utils.py").is_symlink()  # real files: the worktree moves on
    assert sorted(p.name for p in linux.iterdir()) == ["constants.py", "utils.py"]


def test_another_kernels_vmlinux_is_not_adopted(isolated_cache, tmp_path):
    other = build.store_for(arch.X86_64, "b" * 20)
    k = _stored(build.store_for(arch.X86_64, "a" * 20))
    build.adopt(k, _builddir(tmp_path, other, scripts=False))
    assert not k.gdb_vmlinux.exists() and k.gdb_scripts is None


def test_scripts_gdb_is_built_when_the_config_asks(tmp_path):
    (tmp_path / ".config").write_text("CONFIG_MMU=y\n")
    assert build.make_targets(arch.ARM64, tmp_path) == ["Image", "headers_install"]
    (tmp_path / ".config").write_text("CONFIG_MMU=y\nCONFIG_GDB_SCRIPTS=y\n")
    assert build.make_targets(arch.ARM64, tmp_path)[-1] == "scripts_gdb"


def test_a_new_kernel_is_stored_with_its_vmlinux_and_gdb_scripts(isolated_cache, tmp_path):
    k = build.store_for(arch.ARM64, "e" * 20)
    bd = _builddir(tmp_path, k, scripts=True)
    (bd / "arch/arm64/boot").mkdir(parents=True)
    (bd / "arch/arm64/boot/Image").write_bytes(b"image")
    (bd / ".config").write_text("CONFIG_GDB_SCRIPTS=y\n")
    (bd / "orch-headers/include").mkdir(parents=True)
    build.store(arch.ARM64, k.key, bd, k.store, 0.0, steps=12, cold=False)
    assert k.gdb_vmlinux.read_bytes() == (bd / "vmlinux").read_bytes()
    assert k.gdb_scripts is not None and not k.gdb_scripts.is_symlink()
    assert (k.info()["steps"], k.info()["cold"]) == (12, False)
