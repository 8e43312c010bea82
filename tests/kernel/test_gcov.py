"""Line coverage on the host (kernel/gcov.py): a program built as kbuild builds (out of
tree, `../mm/x.c` from a build dir one level down), run, and its gcda read back with the
stored notes through the real gcov and gcovr; and which lines each patch added (git blame)."""

import json
import subprocess

import pytest

from orchestrator.base.errors import InfraError
from orchestrator.base.runner import Runner
from orchestrator.kernel import arch, build, gcov
from orchestrator.kernel import coverage as cov
from orchestrator.kernel.build import Kernel
from orchestrator.kernel.coverage import NOTES
from orchestrator.testing import gcovdata
from tests.support.host import git

X_C = """\
#include "h.h"

int move(int x)
{
	if (x > 3)
		return twice(x) + 1;
	if (x == -1)
		return -16;
	return 0;
}

int main(int argc, char **argv)
{
	(void)argv;
	return move(argc) > 100;
}
"""
H_H = """\
static inline int twice(int x)
{
	return 2 * x;
}
"""


@pytest.fixture
def built(tmp_path):
    """A program compiled and run as a kernel's profiled file is: its notes in a store
    entry, its counts as the gcda; the tree it came from is gone afterwards."""
    tree = tmp_path / "tree"
    (tree / "mm").mkdir(parents=True)
    (tree / "include").mkdir()
    (tree / "mm/x.c").write_text(X_C)
    (tree / "include/h.h").write_text(H_H)
    bd = tree / ".orch-build-x86_64-coverage"
    (bd / "mm").mkdir(parents=True)
    data = tmp_path / "debugfs"  # where the program writes its counters: /orch-gcov
    run = lambda *a: subprocess.run(a, cwd=bd, check=True)  # noqa: E731
    run("gcc", "-fprofile-arcs", "-ftest-coverage", *cov.reproducible_flags(bd, str(data)),
        "-I../include", "-c", "../mm/x.c", "-o", "mm/x.o")
    run("gcc", "-fprofile-arcs", "-o", "prog", "mm/x.o")
    for argv in (["./prog", "a", "b", "c", "d"], ["./prog", "a", "b", "c", "d", "e"]):
        subprocess.run(argv, cwd=bd)
    store = tmp_path / "store"
    (store / NOTES / "mm").mkdir(parents=True)
    (store / NOTES / "mm/x.gcno").write_bytes((bd / "mm/x.gcno").read_bytes())
    (store / "kernel.json").write_text(json.dumps({"coverage": {
        "requested": ["mm/x.c"], "profiled": ["mm/x.c"], "source_prefix": "../"}}))
    # named as in the kernel's debugfs (gcc's -fprofile-dir mangling): matched back by path
    tar = tmp_path / "x.tar"
    tar.write_bytes(gcovdata.tar_of({"orch-gcov/mm#x.gcda": (data / "mm#x.gcda").read_bytes()}))
    gcda = gcovdata.members(tar, ["mm/x.c"])["mm/x.c"]
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    return Kernel(arch.X86_64, "k" * 20, store), gcda


def test_counts_of_a_run_with_the_stored_notes_through_gcov_and_gcovr(built, tmp_path):
    kernel, gcda = built
    work = tmp_path / "work"
    gcov.stage(work, kernel, {"mm/x.c": X_C, "include/h.h": H_H})
    tool = gcov.gcov_tool(arch.X86_64, build.compiler_version(arch.X86_64, Runner()),
                          Runner())
    counts = gcov.line_counts(work, {"mm/x.c": gcda}, tool, Runner())
    x = counts["mm/x.c"]
    assert x[5] == (2, "move")  # if (x > 3): both runs
    assert x[6][0] == 2  # return twice(x) + 1
    assert x[7][0] == 0 and x[8] == (0, "move")  # the x == -1 branch never ran
    assert x[15] == (2, "main")
    assert 1 not in x and 2 not in x  # not executable: no entry
    assert counts["include/h.h"][3] == (2, "twice")  # a header's inline, in the .c's data
    # without data the lines are still there, run 0 times
    empty = gcov.line_counts(work, {}, tool, Runner())
    assert set(empty["mm/x.c"]) == set(x) and all(c == 0 for c, _ in
                                                  empty["mm/x.c"].values())


def test_the_gcov_must_come_from_the_kernels_compiler():
    cc = build.compiler_version(arch.ARM64, Runner())
    assert gcov.gcov_tool(arch.ARM64, cc, Runner()) == "aarch64-linux-gnu-gcov"
    with pytest.raises(InfraError, match="must come from the same compiler"):
        gcov.gcov_tool(arch.X86_64, "gcc (Debian 11.3.0-1) 11.3.0", Runner())


def test_notes_of_a_build_outside_its_tree_cannot_be_mapped(built, tmp_path):
    kernel, _ = built
    (kernel.store / "kernel.json").write_text(json.dumps({"coverage": {
        "profiled": ["mm/x.c"], "source_prefix": "/src/linux/"}}))
    with pytest.raises(InfraError, match="cannot be mapped"):
        gcov.stage(tmp_path / "w", kernel, {})


def test_a_stored_kernel_without_a_files_notes_is_a_coverage_error_leaving_no_work(
        built, tmp_path):
    kernel, _ = built
    (kernel.store / NOTES / "mm/x.gcno").unlink()
    work = tmp_path / "w"
    with pytest.raises(InfraError, match="has no notes for mm/x.c .*mm/x.gcno") as e:
        gcov.stage(work, kernel, {"mm/x.c": X_C})
    assert e.value.stage == "coverage" and not work.exists()


def test_a_line_belongs_to_the_last_patch_that_wrote_it_and_a_removed_one_to_none(tmp_path):
    repo = tmp_path / "r"
    (repo / "mm").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "mm/x.c").write_text("a\nb\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    commits = {}
    steps = [("0001-add.patch", "a\nnew1\nnew2\nnew3\nb\n"),
             ("0002-change.patch", "a\nnew1\nchanged2\nb\nnew4\n")]
    base = git(repo, "rev-parse", "HEAD").strip()
    for name, text in steps:
        (repo / "mm/x.c").write_text(text)
        git(repo, "commit", "-qam", name)
        commits[git(repo, "rev-parse", "HEAD").strip()] = name
    head = git(repo, "rev-parse", "HEAD").strip()
    got = gcov.added_lines(repo / ".git", base, head, "mm/x.c", commits, Runner())
    assert got == [(2, "new1", "0001-add.patch"), (3, "changed2", "0002-change.patch"),
                   (5, "new4", "0002-change.patch")]  # new3: removed by 0002, nobody's
    assert cov.series_sources(repo / ".git", base, head, Runner()) == ["mm/x.c"]
    assert gcov.file_at(repo / ".git", head, "mm/x.c", Runner()) == steps[1][1]


def test_a_profiled_object_is_the_same_from_any_build_dir(tmp_path):
    """gcc stamps profiled objects with the time and the .gcda's absolute path: with
    coverage.py's flags, two build dirs (orch's, gc --verify's scratch one) give the same
    object, byte for byte; without them, even two builds in one dir differ."""
    objs = {}
    for d, flags in (("a", True), ("b", True), ("c", False), ("d", False)):
        bd = tmp_path / d / "tree" / ".b"
        (bd / "mm").mkdir(parents=True)
        (bd.parent / "mm").mkdir()
        (bd.parent / "mm/x.c").write_text(X_C.replace('#include "h.h"', H_H))
        extra = cov.reproducible_flags(bd) if flags else []
        subprocess.run(["gcc", "-O2", "-fprofile-arcs", "-ftest-coverage", *extra, "-c",
                        "../mm/x.c", "-o", "mm/x.o"], cwd=bd, check=True)
        objs[d] = (bd / "mm/x.o").read_bytes()
    assert objs["a"] == objs["b"]
    assert objs["c"] != objs["d"]
