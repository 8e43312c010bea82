"""Building the kernel's own kselftests: collection lookup, make's failures into `unbuilt`,
the cache, and the tree left clean; against a fake kernel tree whose Makefiles are real
make files (one program builds, one fails like a missing library does)."""

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.base.errors import InfraError, UsageError
from orchestrator.base.runner import Runner
from orchestrator.kernel import arch as archmod
from orchestrator.testing import kselftest_build as kb

DATA = Path(__file__).parent / "data"

TOP = """\
VERSION = 6
PATCHLEVEL = 12
headers:
\tmkdir -p $(O)/usr/include/linux && echo '#define FAKE_UAPI 1' > $(O)/usr/include/linux/fake.h
"""
SELFTESTS = """\
TARGETS += mm
TARGETS += drivers/net
all:
\tfor t in $(TARGETS); do mkdir -p $(O)/kselftest/$$t && \\
\t  $(MAKE) -C $$t OUTPUT=$(O)/kselftest/$$t || exit; done
install: all
\tmkdir -p $(INSTALL_PATH)
\tprintf '#!/bin/sh\\n' > $(INSTALL_PATH)/run_kselftest.sh
\tfor t in $(TARGETS); do $(MAKE) -C $$t OUTPUT=$(O)/kselftest/$$t \\
\t  INSTALL_PATH=$(INSTALL_PATH)/$$t install; done
\tfor t in $(TARGETS); do printf "$$t:good\\n$$t:bad\\n$$t:run.sh\\n"; done \\
\t  > $(INSTALL_PATH)/kselftest-list.txt
"""
COLLECTION = """\
all: $(OUTPUT)/good $(OUTPUT)/bad $(OUTPUT)/numa
local_config.mk:
\techo 'written into the source dir, as mm/check_config.sh does' > $@
$(OUTPUT)/good: local_config.mk
\t@echo "  CC       good"
\t@test "$(filter -static,$(EXTRA_CFLAGS) $(USERLDFLAGS))" = "-static -static"
\t@grep -q FAKE_UAPI $(O)/usr/include/linux/fake.h
\t@printf '#!/bin/sh\\necho ok\\n' > $@ && chmod +x $@
$(OUTPUT)/bad:
\t@echo "  CC       bad"
\t@echo "bad.c:9:10: fatal error: numa.h: No such file or directory"
\t@false
$(OUTPUT)/numa: $(OUTPUT)/good
\t@echo "  CC       numa"
\t@test -f "$$CPATH/numa.h" || { echo "numa.c:1:10: fatal error: numa.h: No such file"; false; }
\t@cp $(OUTPUT)/good $@
install:
\tmkdir -p $(INSTALL_PATH)
\t-cp $(OUTPUT)/good $(OUTPUT)/bad $(OUTPUT)/numa run.sh $(INSTALL_PATH)/
"""


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "linux"
    st = src / "tools/testing/selftests"
    for d in ("mm", "drivers/net", "kselftest"):
        (st / d).mkdir(parents=True)
    (src / "Makefile").write_text(TOP)
    (st / "Makefile").write_text(SELFTESTS)
    for d in ("mm", "drivers/net"):
        (st / d / "Makefile").write_text(COLLECTION)
        (st / d / "run.sh").write_text("#!/bin/sh\n")
    (st / "drivers/Makefile").write_text("")  # not a collection of its own (not in TARGETS)
    return src


@pytest.fixture
def dev(tmp_path, monkeypatch):
    """The -dev packages' sysroot, without a download: a directory with numa.h."""
    root = tmp_path / "dev"
    (root / "usr/include").mkdir(parents=True)
    (root / "usr/include/numa.h").write_text("")
    asked = []

    def fake(arch, runner, progress, packages, name):
        asked.append((arch.name, packages, name))
        return root

    monkeypatch.setattr(kb, "sysroot", fake)
    return asked


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_known_collections(tree):
    assert kb.known_collections(tree) == ["drivers", "drivers/net", "mm"]
    assert kb.known_collections(tree / "nowhere") == []


def test_an_unknown_collection_is_refused_in_one_line(tree, isolated_cache, dev):
    with pytest.raises(UsageError) as exc:
        kb.build(archmod.X86_64, tree, "t1", ["mm", "vm"], Runner(), tree / "log")
    assert str(exc.value) == (f"--kselftest vm: no such collection in {tree} "
                              f"(have: drivers, drivers/net, mm)")
    assert not (isolated_cache / "kselftests").exists()


def test_make_argv_cross_static_and_own_headers():
    argv = kb.make_argv(archmod.ARM64, Path("/t"), Path("/o"), ["mm"], "all", 2)
    assert argv[:3] == ["make", "-k", "-j2"] and "-Otarget" in argv
    dev = kb.make_argv(archmod.ARM64, Path("/t"), Path("/o"), ["mm"], "all", 2, dev=Path("/d"))
    assert "USERLDFLAGS=-static -L/d/usr/lib/aarch64-linux-gnu" in dev
    assert kb.build_env(Path("/d")) == {"CPATH": "/d/usr/include"}
    assert {"ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-", "MACHINE=arm64",
            "EXTRA_CFLAGS=-static", "USERLDFLAGS=-static", "O=/o", "TARGETS=mm"} <= set(argv)
    inst = kb.make_argv(archmod.ARM64, Path("/t"), Path("/o"), ["mm", "x"], "install", 2,
                        Path("/i"))
    assert inst[1] == "-i" and inst[-2:] == ["install", "INSTALL_PATH=/i"]
    assert "TARGETS=mm x" in inst
    assert kb.headers_argv(archmod.ARM64, Path("/t"), Path("/o"), 2)[-1] == "headers"


def test_unbuilt_from_make_output():
    lines = (DATA / "kselftest-mm-make.txt").read_text().splitlines()
    assert kb.parse_unbuilt(lines, Path("/B/kselftest"), "mm") == {
        "mm:khugepaged": "khugepaged.c:1195:24: error: ‘KSFT_SKIP’ undeclared (first use "
                         "in this function)",
        "mm:memfd_secret": "memfd_secret.c:16:10: fatal error: sys/capability.h: No such "
                           "file or directory",
        "mm:migration": "/usr/bin/ld: cannot find -lnuma: No such file or directory",
        "mm:(32-bit programs)": "not attempted: no 32-bit x86 build environment "
                                "(gcc-multilib)",
    }


def test_build_installs_what_builds_and_caches_it(tree, isolated_cache, tmp_path, dev):
    before = files(tree)
    runner = Runner()
    log = tmp_path / "out/kselftest.log"
    lines: list[str] = []
    got = kb.build(archmod.X86_64, tree, "tree1", ["mm", "drivers/net"], runner, log,
                   progress=lines.append)
    assert got.compiled and got.collections == ["mm", "drivers/net"]
    assert lines == ["kselftest x86_64: building mm (6.12)",
                     "kselftest x86_64: building drivers/net (6.12)"]
    assert dev == [("x86_64", kb.DEV_PACKAGES, "amd64-kselftest-dev")]
    assert got.programs == {"mm": ["good", "run.sh"], "drivers/net": ["good", "run.sh"]}
    assert (got.dir / "mm/numa").is_file()  # built with the -dev sysroot's header
    assert got.unbuilt == {
        "mm:bad": "bad.c:9:10: fatal error: numa.h: No such file or directory",
        "drivers/net:bad": "bad.c:9:10: fatal error: numa.h: No such file or directory"}
    assert got.dir == isolated_cache / "kselftests" / f"x86_64-{got.key}" / "install"
    assert (got.dir / "kselftest-list.txt").read_text() == (
        "mm:good\nmm:run.sh\ndrivers/net:good\ndrivers/net:run.sh\n")
    assert (got.dir / "run_kselftest.sh").is_file()
    assert "make headers ARCH=x86_64" in got.headers
    assert files(tree) == before  # nothing written into the tree (local_config.mk...)
    assert "bad.c:9:10" in log.read_text()
    # Nothing left behind but the entry and its locks.
    assert [p.name for p in (isolated_cache / "kselftests").iterdir()] == [f"x86_64-{got.key}"]

    again = Runner()
    hit = kb.build(archmod.X86_64, tree, "tree1", ["drivers/net", "mm"], again, log,
                   progress=lines.append)
    assert not hit.compiled and len(lines) == 2
    assert not any(c.startswith("make") for c in again.commands)
    assert (hit.dir, hit.programs, hit.unbuilt, hit.key) == (
        got.dir, got.programs, got.unbuilt, got.key)
    other = kb.build(archmod.X86_64, tree, "tree2", ["mm"], Runner(), log, progress=lines.append)
    assert other.compiled and other.key != got.key


def test_without_the_dev_packages_their_programs_are_unbuilt(tree, isolated_cache,
                                                             tmp_path, monkeypatch):
    def offline(*args, **kw):
        raise InfraError("apt-get update (amd64) failed (exit 100): network unreachable")

    monkeypatch.setattr(kb, "sysroot", offline)
    lines: list[str] = []
    got = kb.build(archmod.X86_64, tree, "t", ["mm"], Runner(), tmp_path / "log",
                   progress=lines.append)
    assert got.unbuilt["mm:numa"] == "numa.c:1:10: fatal error: numa.h: No such file"
    assert lines[0].startswith("kselftest x86_64: building without libcap-dev, libnuma-dev")
    assert got.key != kb.cache_key(archmod.X86_64, "t", ["mm"], kb._compiler(
        archmod.X86_64, Runner()))


def test_a_damaged_entry_is_rebuilt(tree, isolated_cache, tmp_path, dev):
    got = kb.build(archmod.X86_64, tree, "t", ["mm"], Runner(), tmp_path / "log",
                   progress=lambda _: None)
    (got.dir.parent / kb.META).unlink()  # a half-published entry: no metadata
    again = kb.build(archmod.X86_64, tree, "t", ["mm"], Runner(), tmp_path / "log",
                     progress=lambda _: None)
    assert again.compiled and (again.dir / "mm/good").is_file()


def test_cache_key_ignores_collection_order():
    a = kb.cache_key(archmod.X86_64, "t", ["mm", "net"], "gcc 12")
    assert a == kb.cache_key(archmod.X86_64, "t", ["net", "mm"], "gcc 12")
    assert a != kb.cache_key(archmod.ARM64, "t", ["mm", "net"], "gcc 12")
    assert a != kb.cache_key(archmod.X86_64, "t", ["mm", "net"], "gcc 13")


def test_dynamic_programs_are_found(tmp_path):
    (tmp_path / "script.sh").write_text("#!/bin/sh\n")
    shutil.copy("/bin/true", tmp_path / "dyn")  # Debian's coreutils: dynamic
    assert kb.dynamic(tmp_path) == ["dyn"]


def test_two_builds_at_once_build_once(tree, isolated_cache, tmp_path, dev):
    def one(i):
        return kb.build(archmod.X86_64, tree, "t", ["mm"], Runner(), tmp_path / f"log{i}",
                        progress=lambda _: None)

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(one, (1, 2))
    assert sorted([a.compiled, b.compiled]) == [False, True]
    assert a.dir == b.dir and (a.dir / "mm/good").is_file()
    assert [p.name for p in (isolated_cache / "kselftests").iterdir()] == [a.dir.parent.name]
