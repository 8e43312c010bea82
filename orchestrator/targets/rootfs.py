"""The guest's initramfs: busybox, dropbear and its libraries, keys, selftests, init.

x86_64 (native) takes busybox-static and dropbear-bin as installed on the host; other
arches download the same Debian packages for their architecture (multiarch download into
the cache, `dpkg -x`), so the guest runs Debian's binaries either way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from orchestrator.base import files
from orchestrator.base.errors import InfraError, MissingToolError
from orchestrator.base.retry import retrying, stop_after_attempt, wait_fixed
from orchestrator.base.runner import Runner
from orchestrator.kernel.arch import Arch, is_native
from orchestrator.store import cache
from orchestrator.targets.keys import Keys
from orchestrator.targets.lava import guest as lavaguest
from orchestrator.targets.layout import READY_MARKER, TESTS_DIR

PACKAGES = ["busybox-static", "dropbear-bin", "libc6", "libcrypt1", "libtomcrypt1",
            "libtommath1", "libgmp10", "zlib1g"]
PAYLOAD_ROOT = "/opt/orch"  # a test payload NAME (a directory tree) is at PAYLOAD_ROOT/NAME

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /dev/shm /tmp /run /var/log
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
# As a distribution's init: debugfs (gup_test for uffd-unit-tests' wp-fork-pin), and huge
# pages for hugetlb tests, taken at boot, before memory fragments: 64 MiB, what 6.12's
# uffd-unit-tests maps (two 32 MiB areas); run_vmtests.sh raises it for its own tests.
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
hp=$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)
[ -n "$hp" ] && [ "$(cat /proc/sys/vm/nr_hugepages)" -lt $((65536 / hp)) ] &&
  echo $((65536 / hp)) > /proc/sys/vm/nr_hugepages
hostname orch-guest
# Booted for this run only: test cases that harm the kernel until reboot may run.
: > /run/orch-throwaway-guest
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
chmod 700 /root /root/.ssh
case " $(cat /proc/cmdline) " in
  *" orch.sshd=0 "*) echo "orch: sshd disabled on the kernel command line" ;;
  *) dropbear -r /etc/dropbear/dropbear_ed25519_host_key -s -p 22 ;;
esac
echo "@READY@ $(uname -r)"
@LAVA@
while :; do sleep 3600; done
""".replace("@READY@", READY_MARKER).replace("@LAVA@", lavaguest.CONSOLE.strip())

PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
GROUP = "root:x:0:\n"


def _apt_opts(arch: Arch, root: Path) -> list[str]:
    return [
        "-o", f"APT::Architecture={arch.debian_arch}",
        "-o", f"APT::Architectures::={arch.debian_arch}",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", "Debug::NoLocking=1",
        "-o", "APT::Sandbox::User=root",
        "-q",
    ]


def sysroot(arch: Arch, runner: Runner, progress=print, packages: list[str] | None = None,
            name: str | None = None) -> Path:
    """A directory holding the Debian userland packages orch needs, for this arch.

    The guest's own packages on the native arch are the host's (`/`); other arches, and
    other package sets (`packages`, kept under `name`), are downloaded into the cache.
    """
    if packages is None and is_native(arch):
        for tool, pkg in (("/bin/busybox", "busybox-static"),
                          ("/usr/sbin/dropbear", "dropbear-bin")):
            if not Path(tool).exists():
                raise MissingToolError(f"{tool} not found (apt-get install {pkg})")
        if not _is_static("/bin/busybox"):
            raise MissingToolError("/bin/busybox is not static (apt-get install busybox-static)")
        return Path("/")
    packages = packages or PACKAGES
    root = cache.subdir("sysroot", name or arch.debian_arch)
    done = root / "complete"
    if done.exists():
        return root / "root"
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise MissingToolError(f"apt-get/dpkg needed to fetch {arch.name} userland "
                               f"(Debian host)")
    # Two runs starting at once on an empty cache: one downloads, the other waits.
    with cache.locked(root / ".lock"):
        if done.exists():
            return root / "root"
        progress(f"rootfs {arch.name}: downloading {', '.join(packages)} ({arch.debian_arch})")
        for d in ("lists/partial", "cache/archives/partial", "debs"):
            (root / d).mkdir(parents=True, exist_ok=True)
        opts = _apt_opts(arch, root)
        def fetch() -> None:
            runner.check(["apt-get", *opts, "update"], InfraError,
                         f"apt-get update ({arch.debian_arch})")
            runner.check(["apt-get", *opts, "download",
                          *[f"{p}:{arch.debian_arch}" for p in packages]],
                         InfraError, f"apt-get download ({arch.debian_arch})",
                         cwd=root / "debs")

        # Once more on failure, lists fetched anew: a mirror caught mid-sync gives lists
        # naming versions it no longer serves ("version ... not found").
        retrying(f"rootfs {arch.name}", InfraError, stop=stop_after_attempt(2),
                 wait=wait_fixed(0), say=progress)(fetch)
        out = root / "root"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        for deb in sorted((root / "debs").glob("*.deb")):
            runner.check(["dpkg-deb", "-x", str(deb), str(out)], InfraError,
                         f"dpkg-deb -x {deb.name}")
        done.write_text("")
    return root / "root"


BASH_STATIC = "bin/bash-static"  # Debian's bash-static, in the package and on the host


def bash_static(arch: Arch, runner: Runner, progress=print) -> Path:
    """The host path of a static bash for `arch` (Debian's bash-static), for guest scripts
    that need bash (kselftest's run_kselftest.sh, mm's run_vmtests.sh) in a busybox guest.
    The native arch: the host's /bin/bash-static (ci/setup.sh installs it); other arches:
    the arm64 (...) package, downloaded once into the cache."""
    if is_native(arch):
        path = Path("/") / BASH_STATIC
        if not path.is_file():
            raise MissingToolError(f"{path} not found (apt-get install bash-static)")
    else:
        name = f"{arch.debian_arch}-bash-static"
        if runner.dry_run:  # sysroot would mark an empty download complete
            return cache.cache_root() / "sysroot" / name / "root" / BASH_STATIC
        path = sysroot(arch, runner, progress, packages=["bash-static"], name=name) / BASH_STATIC
        if not path.is_file():
            raise InfraError(f"{arch.name}: the bash-static package has no /{BASH_STATIC}")
    if not _is_static(str(path)):
        raise MissingToolError(f"{path} is not static (apt-get install bash-static)")
    return path


def _is_static(path: str) -> bool:
    """No shared library and no loader: it runs alone in a busybox guest. A file that is
    not there, or is not ELF, is not."""
    try:
        needed, interp = _elf(Path(path))
    except MissingToolError:
        return False
    return not needed and interp is None


def _elf(path: Path) -> tuple[list[str], str | None]:
    """An ELF file's DT_NEEDED libraries and PT_INTERP loader (pyelftools)."""
    try:
        with open(path, "rb") as f:
            segments = list(ELFFile(f).iter_segments())
            interp = next((s.get_interp_name() for s in segments
                           if s["p_type"] == "PT_INTERP"), None)
            needed = [t.needed for s in segments if s["p_type"] == "PT_DYNAMIC"
                      for t in s.iter_tags("DT_NEEDED")]
    except OSError as exc:
        raise MissingToolError(f"{path}: {exc.strerror}") from None
    except ELFError as exc:
        raise MissingToolError(f"{path}: not an ELF file ({exc})") from None
    return needed, interp


def _needed(path: Path) -> list[str]:
    return _elf(path)[0]


def _interp(path: Path) -> str | None:
    return _elf(path)[1]


def _find_lib(root: Path, arch: Arch, name: str) -> Path | None:
    for d in (f"lib/{arch.gnu_triplet}", f"usr/lib/{arch.gnu_triplet}", "lib", "usr/lib",
              "lib64"):
        p = root / d / name
        if p.exists():
            return p
    return None


def closure(root: Path, arch: Arch, binary: str) -> dict[str, Path]:
    """guest path -> host file for `binary` and every shared library it needs."""
    found: dict[str, Path] = {}
    main = root / binary.lstrip("/")
    if not main.exists():
        raise MissingToolError(f"{main} not found in the {arch.name} userland")
    found[binary] = main
    todo = [main]
    while todo:
        cur = todo.pop()
        interp = _interp(cur)
        if interp and interp not in found:
            p = root / interp.lstrip("/")
            if not p.exists():
                raise MissingToolError(f"{arch.name}: loader {interp} missing (libc6)")
            found[interp] = p
        for lib in _needed(cur):
            host = _find_lib(root, arch, lib)
            if host is None:
                raise MissingToolError(f"{arch.name}: {lib} needed by {cur.name} not found")
            gp = f"/lib/{arch.gnu_triplet}/{lib}"
            if gp not in found:
                found[gp] = host
                todo.append(host)
    return found


def payload_dir(name: str) -> str:
    """Where a test payload (a directory tree, e.g. a kselftest install) is in the guest."""
    return f"{PAYLOAD_ROOT}/{name}"


def _tree_files(directory: Path) -> list[tuple[str, Path]]:
    return sorted((str(p.relative_to(directory)), p) for p in directory.rglob("*")
                  if p.is_file() or p.is_symlink())


def build_initramfs(arch: Arch, keys: Keys, tests: list[Path], runner: Runner,
                    progress=print, *, init: str = INIT, extra: tuple[str, ...] = (),
                    packages: list[str] | None = None, name: str | None = None,
                    payload: dict[str, Path] | None = None,
                    guest_files: dict[str, Path] | None = None) -> Path:
    """Assemble the initramfs (uncompressed newc cpio: no decompression under TCG).

    `extra`: more programs (guest paths in the userland, with their libraries); `packages`
    and `name`: a userland other than the guest's own (see `sysroot`). `payload`: test
    directory trees (name -> host dir), each at payload_dir(name); `guest_files`: static
    programs as they are (guest path -> host file: bash-static as /bin/bash).
    """
    payload = payload or {}
    guest_files = guest_files or {}
    root = sysroot(arch, runner, progress, packages, name)
    userland = {"/bin/busybox": root / "bin/busybox"}
    for prog in ("/usr/sbin/dropbear", *extra):
        userland.update(closure(root, arch, prog))
    parts = [f"{g}={cache.file_digest(h)}" for g, h in sorted(userland.items())]
    parts += [f"test:{t.name}={cache.file_digest(t)}" for t in tests]
    parts += [f"file:{g}={cache.file_digest(h)}" for g, h in sorted(guest_files.items())]
    for pname, pdir in sorted(payload.items()):
        parts += [f"payload:{pname}/{rel}={cache.file_digest(h) if h.is_file() else ''}"
                  for rel, h in _tree_files(pdir)]
    parts += [init, lavaguest.TEST_SCRIPT, keys.client_pub, cache.file_digest(keys.host_dropbear)]
    key = cache.digest("initramfs-v1", arch.name, *parts)[:20]
    out = cache.subdir("initramfs") / f"{arch.name}-{key}.cpio"
    cache.hold(out)
    if out.exists():
        cache.touch_used(out)
        return out
    # A private staging dir and temp file: two runs may assemble the same image at once.
    stage = Path(tempfile.mkdtemp(prefix=f".stage-{arch.name}-{key}-",
                                  dir=cache.subdir("initramfs")))
    try:
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/dropbear", "root/.ssh", "proc",
                  "sys", "dev", "tmp", "run", "var/log", TESTS_DIR.lstrip("/")):
            (stage / d).mkdir(parents=True, exist_ok=True)
        for guest, host in userland.items():
            dest = stage / guest.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(host, dest)  # follows symlinks: the real file goes in
            os.chmod(dest, 0o755)
        for t in tests:
            shutil.copy(t, stage / TESTS_DIR.lstrip("/") / t.name)
            os.chmod(stage / TESTS_DIR.lstrip("/") / t.name, 0o755)
        for guest, host in guest_files.items():
            dest = stage / guest.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(host, dest)
            os.chmod(dest, 0o755)
        for pname, pdir in payload.items():
            shutil.copytree(pdir, stage / payload_dir(pname).lstrip("/"), symlinks=True)
        (stage / "init").write_text(init)
        os.chmod(stage / "init", 0o755)
        script = stage / lavaguest.TEST_SCRIPT_PATH.lstrip("/")  # the LAVA job's test
        script.write_text(lavaguest.TEST_SCRIPT)
        os.chmod(script, 0o755)
        (stage / "etc/passwd").write_text(PASSWD)
        (stage / "etc/group").write_text(GROUP)
        (stage / "etc/shells").write_text("/bin/sh\n" + ("/bin/bash\n" if "/bin/bash" in guest_files
                                                           else ""))
        (stage / "root/.ssh/authorized_keys").write_text(keys.client_pub + "\n")
        os.chmod(stage / "root/.ssh/authorized_keys", 0o600)
        os.chmod(stage / "root/.ssh", 0o700)
        os.chmod(stage / "root", 0o700)
        shutil.copy(keys.host_dropbear, stage / "etc/dropbear/dropbear_ed25519_host_key")
        os.chmod(stage / "etc/dropbear/dropbear_ed25519_host_key", 0o600)
        names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*"))
        if not shutil.which("cpio"):
            raise MissingToolError("cpio not found (apt-get install cpio)")
        with files.atomic(out) as tmp:
            Runner().check(["cpio", "-o", "-H", "newc", "-R", "0:0", "--reproducible",
                            "--quiet"], InfraError, "cpio", input_text="\n".join(names),
                           cwd=stage, out_file=tmp)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out
