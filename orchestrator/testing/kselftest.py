"""kselftest's conventions that do not depend on KTAP: a program's verdict from its exit
code (tools/testing/selftests/kselftest.h) and a collection's `settings` file (read by
kselftest/runner.sh).

Exit codes and orch's statuses:

    0 KSFT_PASS  -> pass
    1 KSFT_FAIL  -> fail
    2 KSFT_XFAIL -> pass, message "xfail: ..." (an expected failure is a success)
    3 KSFT_XPASS -> fail, message "xpass: ..." (an unexpected pass is not)
    4 KSFT_SKIP  -> skip
    128+N        -> fail (killed by signal N: the shell's status for a signalled program)
    126, 127     -> error (the shell could not execute it / did not find it)
    other        -> fail (runner.sh reports any other status as "not ok")

xfail/xpass follow kselftest.h's own arithmetic: `ksft_finished()` exits with success
when pass + xfail + skip == the plan, so an xfail counts as passing and an xpass fails the
program, and `ksft_test_result_xfail()` prints "ok ... # XFAIL". (runner.sh, and the CI
systems that parse its TAP, print "not ok ... # exit=2" for both 2 and 3: it knows only 0,
4 and its own timeout, 124.)
"""

from __future__ import annotations

import re
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path

from orchestrator.base.errors import UsageError
from orchestrator.testing.ktap import TestResult, failure_line

PASS, FAIL, XFAIL, XPASS, SKIP = 0, 1, 2, 3, 4
NAMES = {PASS: "KSFT_PASS", FAIL: "KSFT_FAIL", XFAIL: "KSFT_XFAIL", XPASS: "KSFT_XPASS",
         SKIP: "KSFT_SKIP"}
DEFAULT_TIMEOUT = 45  # seconds: runner.sh's kselftest_default_timeout
SETTINGS = "settings"


def verdict(code: int | None) -> tuple[str, str]:
    """(status, label) for a program's exit code, e.g. ("pass", "xfail: exit 2 (KSFT_XFAIL),
    an expected failure"). The label is empty for a plain pass."""
    if code is None or code < 0:
        return "error", "no exit status"
    if code == PASS:
        return "pass", ""
    if code in NAMES:
        label = f"exit {code} ({NAMES[code]})"
        status = {FAIL: "fail", XFAIL: "pass", XPASS: "fail", SKIP: "skip"}[code]
        if code == XFAIL:
            label = f"xfail: {label}, an expected failure"
        elif code == XPASS:
            label = f"xpass: {label}, an unexpected pass"
        return status, label
    if code in (126, 127):
        return "error", f"exit {code} (the shell could not run it)"
    if code > 128:
        try:
            sig = signal.Signals(code - 128).name
        except ValueError:
            sig = "unknown"
        return "fail", f"killed by signal {code - 128} ({sig})"
    return "fail", f"exit {code} (not a kselftest code)"


def exit_case(name: str, code: int | None, output: str) -> TestResult:
    """The one testcase of a program that reports no tests of its own: named after the
    program, its status from the exit code, its output the detail. The message says why
    (with the line that says what failed, or the last line for a skip, the usual reason)."""
    status, label = verdict(code)
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    if status == "fail":
        why = failure_line(lines)
    elif status == "skip":
        why = lines[-1].strip() if lines else ""
    else:
        why = ""
    message = f"{label}: {why}" if label and why else label
    return TestResult(name, status, message=message, diagnostics=lines, kind="exit_code")


def read_settings(where: Path) -> dict[str, str]:
    """A collection's `settings` (`where` is the file or its directory) as runner.sh reads
    it: `field=value` lines, `#` comments; {} when there is none."""
    path = where / SETTINGS if where.is_dir() else where
    if not path.is_file():
        return {}
    fields: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        field, value = line.split("=", 1)
        fields[field.strip()] = value.strip()
    return fields


_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def timeout(where: Path) -> float | None:
    """Seconds a program of the collection may run: its settings' `timeout`, else
    kselftest's default (45). None: no limit (`timeout=0`, as /usr/bin/timeout reads it)."""
    value = read_settings(where).get("timeout")
    if value is None:
        return float(DEFAULT_TIMEOUT)
    m = _DURATION.match(value)
    if not m:
        raise UsageError(f"{where}: timeout={value}: not a duration (seconds, or N[smhd])")
    seconds = float(m.group("n")) * _UNIT[m.group("unit")]
    return seconds or None


# --- what to run: `--kselftest COLLECTION[:WHAT]` ------------------------------------------

_COLLECTION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
_PROGRAM = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
RUN_VMTESTS = "run_vmtests.sh"  # mm's (vm's) runner: `-t CATEGORY` selects (6.3+)


@dataclass(frozen=True)
class Request:
    """One `--kselftest` value (or plan entry):

        mm                          the collection, as run_kselftest.sh runs it: each
                                    program of its kselftest-list.txt (mm: run_vmtests.sh)
        mm:uffd-unit-tests[,cow]    these programs of the collection
        mm:uffd-stress anon 20 16   one program with its arguments (as run_vmtests.sh
                                    passes them)
        mm:@userfaultfd[,@mmap]     run_vmtests.sh -t CATEGORY, one run per category
    """

    collection: str
    programs: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    text: str = ""

    def __str__(self) -> str:
        return self.text or self.collection


def parse_request(text: str) -> Request:
    """A `--kselftest` value as a Request; UsageError naming what is wrong."""
    where = f"--kselftest {text}"
    coll, sep, rest = text.strip().partition(":")
    if not _COLLECTION.match(coll) or ".." in coll.split("/"):
        raise UsageError(f"{where}: '{coll}' is not a collection name (a directory of "
                         f"tools/testing/selftests, e.g. mm or vm)")
    if not sep:
        return Request(coll, text=text)
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if not words:
        raise UsageError(f"{where}: nothing after ':' (give PROGRAM, PROGRAM,PROGRAM, "
                         f"PROGRAM ARGS... or @CATEGORY)")
    head, args = words[0], tuple(words[1:])
    items = [x for x in head.split(",")]
    cats = [x[1:] for x in items if x.startswith("@")]
    progs = [x for x in items if not x.startswith("@")]
    if cats and progs:
        raise UsageError(f"{where}: mix of programs and @categories: give them as two "
                         f"--kselftest values")
    if args and (len(items) != 1 or cats):
        raise UsageError(f"{where}: arguments go with one program (PROGRAM ARG...)")
    for x in cats + progs:
        if not _PROGRAM.match(x):
            raise UsageError(f"{where}: '{x}' is not a program or category name")
    return Request(coll, tuple(progs), tuple(cats), args, text=text)


@dataclass(frozen=True)
class Program:
    """One program the test stage runs: one suite of results.

    binary: its name in the results (`kselftest.mm.uffd-unit-tests`); path and cwd: under
    the payload's directory on the machine; program: its file name (for its text format);
    timeout: seconds, None for no limit; skip: not run, reported skipped with this reason
    (a program the kselftest build could not make)."""

    binary: str
    payload: str
    path: str
    program: str
    args: tuple[str, ...] = ()
    cwd: str = ""
    timeout: float | None = None
    skip: str = ""


def suite_name(collection: str, what: str, args: tuple[str, ...] = ()) -> str:
    """`kselftest.mm.uffd-unit-tests`: never the name of one of orch's own binaries (those
    have no dots), one segment per collection level."""
    tail = "_".join((what, *args)) if args else what
    tail = re.sub(r"[^A-Za-z0-9_.+@-]+", "_", tail)
    return ".".join(["kselftest", *collection.split("/"), tail])


def programs(req: Request, installed: Path, listed: list[str], unbuilt: dict[str, str],
             override: float | None = None) -> list[Program]:
    """The programs one request runs, from a kselftest install dir (`installed`: its
    COLLECTION/ dir holds the programs; `listed`: the collection's kselftest-list.txt
    programs; `unbuilt`: "collection:program" -> why it was not built)."""
    coll = req.collection
    cdir = installed / coll
    limit = override if override is not None else timeout(cdir)

    def one(prog: str, args: tuple[str, ...] = (), binary: str = "") -> Program:
        name = binary or suite_name(coll, prog, args)
        why = unbuilt.get(f"{coll}:{prog}")
        if why is not None and not (cdir / prog).is_file():
            return Program(name, "kselftest", f"{coll}/{prog}", prog, args, coll, limit,
                           skip=f"not built: {why}")
        if not (cdir / prog).is_file():
            have = sorted(p.name for p in cdir.iterdir() if p.is_file()
                          and p.stat().st_mode & 0o111)
            raise UsageError(f"--kselftest {req}: {coll} has no program {prog} (built: "
                             f"{', '.join(have[:30])}{' ...' if len(have) > 30 else ''})")
        return Program(name, "kselftest", f"{coll}/{prog}", prog, args, coll, limit)

    if req.categories:
        if not (cdir / RUN_VMTESTS).is_file():
            raise UsageError(f"--kselftest {req}: @CATEGORY needs {coll}/{RUN_VMTESTS}, "
                             f"which {coll} does not have")
        return [one(RUN_VMTESTS, ("-t", c), binary=suite_name(coll, f"@{c}"))
                for c in req.categories]
    if req.programs:
        return [one(p, req.args) for p in req.programs]
    extra = [k.split(":", 1)[1] for k in unbuilt if k.startswith(f"{coll}:")]
    return [one(p) for p in listed] + [one(p) for p in extra if p not in listed]
