"""Debug info on demand, with a real compiler and archive: the object of a function found
in the build's thin archive by name and size, and compiled again with -g from its kbuild
command line, into a scratch file (the build dir untouched, the code the same)."""

import shlex
import subprocess

from orchestrator.base.runner import Runner
from orchestrator.kernel import debuginfo

SOURCE = """int helper(int x) { return x * 3; }
int move_pages_pte(int *p) { int v = helper(*p); return v + 1; }
"""


def build(tmp_path):
    """A little out-of-tree build as kbuild leaves it: the object, its .cmd, vmlinux.a."""
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm/userfaultfd.c").write_text(SOURCE)
    b = tmp_path / ".orch-build-x86_64"
    (b / "mm").mkdir(parents=True)
    cmd = ("gcc -Wp,-MMD,mm/.userfaultfd.o.d -O2 -DKBUILD_MODNAME='\"userfaultfd\"' "
           "-c -o mm/userfaultfd.o ../mm/userfaultfd.c")
    subprocess.run(shlex.split(cmd), cwd=b, check=True)
    (b / "mm/.userfaultfd.o.d").unlink()  # kbuild's fixdep turns it into the .cmd
    (b / "mm/.userfaultfd.o.cmd").write_text(
        f"cmd_mm/userfaultfd.o := ccache {cmd}   ; ./tools/objtool/objtool mm/userfaultfd.o\n"
        "\nsource_mm/userfaultfd.o := ../mm/userfaultfd.c\n")
    subprocess.run(["ar", "rcsT", "vmlinux.a", "mm/userfaultfd.o"], cwd=b, check=True)
    return b


def size_of(obj, name):
    out = subprocess.run(["nm", "-S", str(obj)], capture_output=True, text=True).stdout
    return next(int(ln.split()[1], 16) for ln in out.splitlines() if ln.endswith(f" {name}"))


def test_object_by_name_and_size_compiled_again_with_dwarf(tmp_path):
    b = build(tmp_path)
    size = size_of(b / "mm/userfaultfd.o", "move_pages_pte")
    # kallsyms' size may carry alignment padding (arm64): a few bytes more still match.
    found = debuginfo.objects_for(b, {("move_pages_pte", size), ("move_pages_pte", size + 4),
                                      ("move_pages_pte", size - 1), ("absent", 4)}, "",
                                  Runner())
    # A size that does not fit (another build of the object in the build dir): the one
    # object of that name, for faddr2line to check against the sources.
    assert found == {("move_pages_pte", size): "mm/userfaultfd.o",
                     ("move_pages_pte", size + 4): "mm/userfaultfd.o",
                     ("move_pages_pte", size - 1): "mm/userfaultfd.o"}
    argv = debuginfo.compile_argv(b, "mm/userfaultfd.o", tmp_path / "dbg.o")
    assert argv[0] == "gcc" and argv[-1] == "-g" and "-Wp,-MMD,mm/.userfaultfd.o.d" not in argv
    assert "-DKBUILD_MODNAME=\"userfaultfd\"" in argv and "objtool" not in " ".join(argv)
    before = (b / "mm/userfaultfd.o").read_bytes()
    assert debuginfo.compile_with_debug(b, "mm/userfaultfd.o", tmp_path / "dbg.o", Runner())
    assert (b / "mm/userfaultfd.o").read_bytes() == before
    assert not (b / "mm/.userfaultfd.o.d").exists()
    sections = subprocess.run(["readelf", "-S", str(tmp_path / "dbg.o")], capture_output=True,
                              text=True).stdout
    assert ".debug_line" in sections
    assert size_of(tmp_path / "dbg.o", "move_pages_pte") == size  # the same code


def test_no_archive_or_no_command_line(tmp_path):
    assert debuginfo.objects_for(tmp_path, {("f", 1)}, "", Runner()) == {}
    assert debuginfo.compile_argv(tmp_path, "mm/x.o", tmp_path / "o") is None


def test_a_function_in_no_archived_object_is_looked_for_in_the_touched_sources(tmp_path):
    """The build dir last built another kernel (a stored kernel is not rebuilt): a function
    the series added is in no object of the archive. The touched source that defines it
    (not one that only declares or calls it) names the object to compile."""
    b = build(tmp_path)
    (tmp_path / "mm/userfaultfd.c").write_text(
        SOURCE + "long uffd_move_pages(int *p,\n\t\t     int n)\n{\n\treturn *p + n;\n}\n")
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs/userfaultfd.c").write_text(
        "long uffd_move_pages(int *p,\n\t\t     int n);\n"
        "static long ioctl(int *p)\n{\n\treturn uffd_move_pages(p, 1);\n}\n")
    (b / "fs").mkdir()
    (b / "fs/.userfaultfd.o.cmd").write_text((b / "mm/.userfaultfd.o.cmd").read_text())
    touched = {"fs/userfaultfd.c", "mm/userfaultfd.c", "include/linux/userfaultfd_k.h"}
    found = debuginfo.objects_for(b, {("uffd_move_pages", 0x40), ("absent", 4)}, "",
                                  Runner(), tmp_path, touched)
    assert found == {("uffd_move_pages", 0x40): "mm/userfaultfd.o"}
    # Without the series' files, nothing to go on.
    assert debuginfo.objects_for(b, {("uffd_move_pages", 0x40)}, "", Runner()) == {}
