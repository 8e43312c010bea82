"""The coverage build (kernel/coverage.py): which files are profiled, the make variables
that do it (checked with GNU make and kbuild's own rule, through sub-makes), the key, and
the notes kept in the store."""

import json
import subprocess

import pytest

from orchestrator.base.errors import UsageError
from orchestrator.base.runner import Runner
from orchestrator.kernel import arch, build
from orchestrator.kernel import coverage as cov
from tests.support.host import git

# scripts/Makefile.lib (6.1) decides per object with these variables; the sub-make is
# started per directory as kbuild does (obj=DIR), and the object is the target ($@).
TOP_MK = """\
CFLAGS_KERNEL =
export CFLAGS_KERNEL
all:
\t$(MAKE) -f sub.mk obj=mm mm/userfaultfd.o mm/rmap.o
\t$(MAKE) -f sub.mk obj=fs fs/userfaultfd.o
\t$(MAKE) -f sub.mk obj=kernel kernel/userfaultfd.o
\t$(MAKE) -f sub.mk obj=arch/x86/boot arch/x86/boot/rmap.o
"""
SUB_MK = """\
GCOV_PROFILE_main.o := n
ifeq ($(obj),arch/x86/boot)
GCOV_PROFILE := n
endif
basetarget = $(basename $(notdir $@))
%.o:
\t@echo "$@ $(if $(patsubst n%,,$(GCOV_PROFILE_$(basetarget).o)$(GCOV_PROFILE)),GCOV,plain)\
 $(if $(findstring -frandom-seed,$(CFLAGS_KERNEL)),seed,-)"
"""


def test_make_vars_profile_exactly_the_named_objects_through_sub_makes(tmp_path):
    (tmp_path / "Makefile").write_text(TOP_MK)
    (tmp_path / "sub.mk").write_text(SUB_MK)
    argv = ["make", "-s", "-C", str(tmp_path),
            *cov.make_vars(["mm/userfaultfd.c", "fs/userfaultfd.c", "mm/rmap.c"], tmp_path)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    got = {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines()}
    assert got == {"mm/userfaultfd.o": "GCOV seed", "fs/userfaultfd.o": "GCOV seed",
                   "mm/rmap.o": "GCOV seed",
                   # the same file name elsewhere keeps its directory's own setting
                   "kernel/userfaultfd.o": "plain -", "arch/x86/boot/rmap.o": "plain -"}


def test_make_vars_group_files_by_name_and_ignore_the_environments_cflags(monkeypatch,
                                                                          tmp_path):
    # The build key does not hold the environment: what reaches make must not depend on it,
    # or a stored kernel would not be what its key says (and gc --verify would rebuild
    # with whatever environment it runs in).
    monkeypatch.setenv("CFLAGS_KERNEL", "-DX=1")
    monkeypatch.setenv("CFLAGS_MODULE", "-Wno-x")
    flags = f"-frandom-seed=orch -fprofile-dir=/orch-gcov -fprofile-prefix-path={tmp_path}"
    objs = "fs/userfaultfd.o mm/userfaultfd.o"
    assert cov.make_vars(["mm/userfaultfd.c", "fs/userfaultfd.c"], tmp_path) == [
        f"GCOV_PROFILE_userfaultfd.o=$(if $(filter {objs},$@),y)",
        f"CFLAGS_KERNEL=$(if $(filter {objs},$@),{flags})",
        f"CFLAGS_MODULE=$(if $(filter {objs},$@),{flags})"]
    assert cov.make_vars(None, tmp_path) == []


def test_a_file_its_makefile_keeps_from_gcov_is_left_out_with_a_line(tmp_path):
    (tmp_path / "arch/x86/boot").mkdir(parents=True)
    (tmp_path / "arch/x86/boot/Makefile").write_text("KASAN_SANITIZE := n\nGCOV_PROFILE := n\n")
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm/Makefile").write_text("GCOV_PROFILE_init-mm.o := n\nobj-y += rmap.o\n")
    for f in ("arch/x86/boot/a20.c", "mm/rmap.c", "mm/init-mm.c", "mm/mmap.c"):
        (tmp_path / f).write_text("")
    files, notes = cov.requested(tmp_path, ["mm/rmap.c", "arch/x86/boot/a20.c"],
                                 ["mm/init-mm.c", "mm/mmap.c"])
    assert files == ["mm/mmap.c", "mm/rmap.c"]
    assert notes == [
        "coverage: arch/x86/boot/a20.c is not profiled: arch/x86/boot/Makefile says "
        "GCOV_PROFILE := n",
        "coverage: mm/init-mm.c is not profiled: mm/Makefile says GCOV_PROFILE_init-mm.o := n"]
    with pytest.raises(UsageError, match=r"--coverage=mm/nope.c: no such file"):
        cov.requested(tmp_path, [], ["mm/nope.c"])


def test_series_sources_are_the_c_files_and_headers_the_commits_change_and_keep(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    for f in ("mm/a.c", "mm/gone.c", "include/x.h", "Documentation/d.rst"):
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    for f in ("mm/a.c", "include/x.h", "Documentation/d.rst"):
        (repo / f).write_text("y\n")
    (repo / "mm/gone.c").unlink()
    (repo / "fs").mkdir()
    (repo / "fs/new.c").write_text("z\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "series")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert cov.series_sources(repo / ".git", base, head, Runner()) == [
        "fs/new.c", "include/x.h", "mm/a.c"]


def test_the_key_says_coverage_and_which_files():
    args = (arch.X86_64, "tree", "CONFIG_X=y\n", "gcc 12")
    plain = build.build_key(*args)
    assert plain == build.build_key(*args, None)  # unchanged for plain kernels
    keys = {plain, build.build_key(*args, []), build.build_key(*args, ["mm/rmap.c"]),
            build.build_key(*args, ["mm/rmap.c", "mm/userfaultfd.c"])}
    assert len(keys) == 4
    assert build.build_key(*args, ["mm/b.c", "mm/a.c"]) == \
        build.build_key(*args, ["mm/a.c", "mm/b.c"])


def test_profiled_files_are_those_built_with_gcov_and_their_notes_are_kept(tmp_path):
    bd = tmp_path / "build"
    (bd / "mm").mkdir(parents=True)
    (bd / "mm/.rmap.o.cmd").write_text(
        "cmd_mm/rmap.o := gcc -fprofile-arcs -ftest-coverage -c -o mm/rmap.o ../mm/rmap.c\n"
        "source_mm/rmap.o := ../mm/rmap.c\n")
    (bd / "mm/rmap.gcno").write_bytes(b"oncg")
    # built before without GCOV: a stale notes file does not make it profiled
    (bd / "mm/.mmap.o.cmd").write_text("cmd_mm/mmap.o := gcc -c -o mm/mmap.o ../mm/mmap.c\n")
    (bd / "mm/mmap.gcno").write_bytes(b"stale")
    dest = tmp_path / "store"
    info = cov.keep_notes(bd, ["mm/rmap.c", "mm/mmap.c", "arch/arm64/mm/fault.c"], dest)
    assert info == {"requested": ["arch/arm64/mm/fault.c", "mm/mmap.c", "mm/rmap.c"],
                    "profiled": ["mm/rmap.c"], "source_prefix": "../"}
    assert (dest / cov.NOTES / "mm/rmap.gcno").read_bytes() == b"oncg"
    assert not (dest / cov.NOTES / "mm/mmap.gcno").exists()
    json.dumps(info)
