"""Programs that print their own per-test text instead of KTAP: one record (a TextFormat)
per program, keyed by the program's file name, turning each test line into a testcase.

Used only for a program that prints no KTAP (suite.run_binary); a program without a
format here gets one testcase from its exit code (kselftest.exit_case). Adding a program
is one record in FORMATS: the line that starts a test (its `name` group), the outcomes
that may follow on the same line or a later one, and how a test's text becomes a
testcase name.

uffd-unit-tests (tools/testing/selftests/mm/uffd-unit-tests.c, 6.4+) prints, per test and
memory type, `Testing NAME on MEM... ` (flushed) and then `done`, `skipped [reason: R]`
or `failed [reason: R]`; first `Testing UFFDIO_API (with syscall)... ` and the same with
/dev/userfaultfd; last `Userfaults unit tests: pass=N, skip=N, fail=N (total=N)`. A test
that calls err() dies with exit 1 and "ERROR: ..." on stderr, leaving its line open.

Testcase names: `Testing move-pmd on shmem-private` is `move-pmd.shmem-private`, the test's
own name (what `-l` lists and `-f` selects) then the memory type: no spaces (like orch's
KTAP names, JUnit and shell friendly), one test's memory types sort together, and both
parts are upstream identifiers (uffd_tests[].name, mem_types[].name), so the names are
stable. A line of another shape keeps its text with every run of other characters made
one `_`: `UFFDIO_API_with_syscall`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Callable

from orchestrator.testing.ktap import TestResult, failure_line

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+@-]+")


def safe_name(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_") or "test"


@dataclass(frozen=True)
class Outcome:
    pattern: re.Pattern[str]  # matched at the start of the text; an optional `reason` group
    status: str  # pass, fail, skip


@dataclass(frozen=True)
class TextFormat:
    program: str  # the program's file name
    start: re.Pattern[str]  # matched at the start of a line; a `name` group
    outcomes: tuple[Outcome, ...]
    name: Callable[[str], str] = safe_name
    source: str = ""  # where the format is printed, for whoever updates the record


@dataclass
class TextParsed:
    results: list[TestResult] = field(default_factory=list)
    # The test whose line was started and never finished (the program died, hung, or the
    # machine went away): status "error" here; the caller says why.
    unfinished: TestResult | None = None


def _uffd_name(text: str) -> str:
    m = re.match(r"^(?P<test>\S+) on (?P<mem>\S+)$", text.strip())
    return f"{m.group('test')}.{m.group('mem')}" if m else safe_name(text)


UFFD_UNIT_TESTS = TextFormat(
    program="uffd-unit-tests",
    start=re.compile(r"Testing (?P<name>.+?)\.\.\.(?: |$)"),
    outcomes=(
        Outcome(re.compile(r"done\b"), "pass"),
        Outcome(re.compile(r"skipped(?: \[reason: (?P<reason>.*)\])?"), "skip"),
        Outcome(re.compile(r"failed(?: \[reason: (?P<reason>.*)\])?"), "fail"),
    ),
    name=_uffd_name,
    source="tools/testing/selftests/mm/uffd-unit-tests.c: uffd_test_start, "
           "uffd_test_pass, uffd_test_skip, uffd_test_fail",
)



def _vmtests_name(text: str) -> str:
    # run_vmtests.sh's own pretty_name (6.3+): the command without "./" or "bash ./".
    return safe_name(re.sub(r"^(?:bash )?\./", "", text.strip()))


RUN_VMTESTS_61 = TextFormat(
    program="run_vmtests.sh",
    start=re.compile(r"running (?P<name>.+)$"),
    outcomes=(
        Outcome(re.compile(r"\[PASS\]"), "pass"),
        Outcome(re.compile(r"\[SKIP\]"), "skip"),
        Outcome(re.compile(r"\[FAIL\]"), "fail"),
    ),
    name=_vmtests_name,
    source="tools/testing/selftests/vm/run_vmtests.sh (6.1): run_test() prints `running "
           "CMD` between dashes, the command's output, then [PASS], [SKIP] or [FAIL]; from "
           "6.3 on it prints TAP, read as KTAP",
)

FORMATS: dict[str, TextFormat] = {f.program: f for f in (UFFD_UNIT_TESTS, RUN_VMTESTS_61)}


def lookup(program: str) -> TextFormat | None:
    """The format of a program, by its file name (a path's last part counts)."""
    return FORMATS.get(PurePosixPath(program).name)


def parse(fmt: TextFormat, text: str) -> TextParsed:
    """One testcase per test line of `text` (the program's stdout). Lines between a test's
    start and its outcome are that test's diagnostics; a test started while another was
    still open leaves the other as an error ("no outcome printed")."""
    out = TextParsed()
    current: tuple[str, list[str]] | None = None
    for line in text.splitlines():
        rest = line.strip()
        while rest:
            m = fmt.start.match(rest)
            if m:
                if current is not None:
                    out.results.append(_open_case(fmt, current, len(out.results) + 1,
                                                  "no outcome printed before the next test"))
                current = (m.group("name"), [])
                rest = rest[m.end():].strip()
                continue
            if current is not None:
                done = _outcome(fmt, current, rest, len(out.results) + 1)
                if done is None:
                    current[1].append(rest)
                else:
                    out.results.append(done)
                    current = None
            break
    if current is not None:
        out.unfinished = _open_case(fmt, current, len(out.results) + 1, "did not finish")
    return out


def _outcome(fmt: TextFormat, current: tuple[str, list[str]], text: str,
             number: int) -> TestResult | None:
    raw, diag = current
    for o in fmt.outcomes:
        m = o.pattern.match(text)
        if not m:
            continue
        reason = ((m.groupdict().get("reason") or "").strip())
        if o.status == "skip":
            message = reason
        elif o.status == "fail":
            message = reason or failure_line(diag) or text
        else:
            message = ""
        return TestResult(fmt.name(raw), o.status, number, message, list(diag), kind="text")
    return None


def _open_case(fmt: TextFormat, current: tuple[str, list[str]], number: int,
               message: str) -> TestResult:
    raw, diag = current
    return TestResult(fmt.name(raw), "error", number, message, list(diag), kind="text")
