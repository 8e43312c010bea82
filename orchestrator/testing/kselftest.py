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
import signal
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
