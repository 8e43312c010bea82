"""The error lines of a build's output (gcc, ld, make, modpost), found one way for the
kernel build (kernel/build.py), the kselftest build (testing/kselftest_build.py) and orch's
own selftests (testing/compile.py).

A compiler or linker line says what is wrong; make's `*** [...] Error N` only says which
target failed, so the compiler's lines come first. A warning that mentions "error" is not
an error.
"""

from __future__ import annotations

import re
import shutil
from typing import Iterable

COMPILER_RE = re.compile(r"(: error: |: fatal error: |undefined reference to |"
                         r": cannot find -l|^ERROR: )")  # ^ERROR: modpost
MAKE_RE = re.compile(r"^make(\[\d+\])?: \*\*\* ")


def compiler_errors(lines: Iterable[str]) -> list[str]:
    """The compiler's and linker's error lines, in order."""
    return [ln for ln in lines if COMPILER_RE.search(ln)]


def error_lines(lines: Iterable[str]) -> list[str]:
    """The compiler's and linker's error lines, then make's."""
    lines = list(lines)
    return compiler_errors(lines) + [ln for ln in lines if MAKE_RE.search(ln)]


def first_error(lines: Iterable[str], default: str = "") -> str:
    """The line that says best what failed (stripped), or `default`."""
    found = error_lines(lines)
    return found[0].strip() if found else default


def no_space(lines) -> str | None:
    return next((ln.strip() for ln in lines if "No space left on device" in ln), None)


def os_error_text(exc: OSError) -> str:
    """"No space left on device", also out of shutil.copytree's list of errors."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        first = exc.args[0][0] if exc.args[0] else None
        if first and len(first) == 3:
            return str(first[2]).split("] ", 1)[-1]
    return exc.strerror or str(exc)
