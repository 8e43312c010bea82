"""Error lines of a build's output (kernel/build_errors.py): the compiler's before make's,
a warning that mentions "error" never."""

from orchestrator.kernel import build_errors

OUT = ["  CC      mm/userfaultfd.o",
       "make[3]: *** [scripts/Makefile.build:250: mm/mmap.o] Error 1",  # -j: another job's
       "mm/userfaultfd.c:12:3: warning: 'error' may be used uninitialized [-Wmaybe-uninit]",
       "mm/userfaultfd.c:40:1: error: expected ';' before '}' token",
       "ld: vmlinux.o: in function `f': undefined reference to `g'",
       "/usr/bin/ld: cannot find -lnuma: No such file or directory",
       "ERROR: modpost: \"g\" [mm/x.ko] undefined!",
       "make: *** [Makefile:2010: .] Error 2"]


def test_compiler_lines_first_then_make():
    assert build_errors.error_lines(OUT) == [OUT[3], OUT[4], OUT[5], OUT[6], OUT[1], OUT[7]]
    assert build_errors.first_error(OUT) == OUT[3]
    assert build_errors.compiler_errors(OUT[:3]) == []
    assert build_errors.first_error(OUT[:3]) == OUT[1]
    assert build_errors.first_error(OUT[:1] + OUT[2:3], "default") == "default"
