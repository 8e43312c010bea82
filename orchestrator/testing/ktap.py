"""KTAP (and TAP 13) parser: test binary output in, one result per test out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

RESULT_RE = re.compile(
    r"^(?P<indent>\s*)(?P<ok>ok|not ok)\s+(?P<num>\d+)\s*(?:-\s*)?(?P<name>[^#]*?)\s*"
    r"(?:#\s*(?:(?P<directive>SKIP|TODO|XFAIL|XPASS|TIMEOUT|ERROR)\b)?\s*(?P<reason>.*))?$",
    re.I,
)
PLAN_RE = re.compile(r"^(?P<indent>\s*)1\.\.(?P<n>\d+)(?:\s*#\s*(?:SKIP\b)?\s*(?P<reason>.*))?$",
                     re.I)
VERSION_RE = re.compile(r"^\s*(K?TAP) version (\d+)")
# A nested block: indented (KTAP), or prefixed "# " by kselftest's runner.sh (prefix.pl).
NESTED_VERSION_RE = re.compile(r"^(?P<prefix>\s+|#\s*)K?TAP version \d+")
SUBTEST_RE = re.compile(r"^#\s*Subtest:\s*(?P<name>.*?)\s*$")
# A test's own duration, printed by selftests/ktap.h before its result line: "# time=12ms".
TIME_RE = re.compile(r"^time=(?P<v>\d+(?:\.\d+)?)(?P<unit>ms|s)$")
# Diagnostic lines that say what went wrong (the failure message prefers the first of them).
FAILING_RE = re.compile(r"(fail|error|expected|unexpected|mismatch|killed|timed out|"
                        r"did not|cannot|can't|wrong|bad |got |found|!=|planned)", re.I)


@dataclass
class TestResult:
    name: str
    status: str  # "pass", "fail", "skip", "error"
    number: int = 0
    message: str = ""
    diagnostics: list[str] = field(default_factory=list)
    # "ktap" for a test the binary reported; orch's own checks: dmesg_clean, timeout, ssh,
    # exit_status, missing (planned, never reported), no_ktap; "stage" for a failed stage;
    # exit_code: a program without KTAP judged by its exit code (kselftest); text: a test
    # line of a program's own text format (textformats).
    kind: str = "ktap"
    duration: float | None = None  # seconds, when measured (ktap.h's "# time=" line)
    subtests: list[TestResult] = field(default_factory=list)  # nested KTAP, in order
    reports: list[dict] = field(default_factory=list)  # kernel reports (testing.triage)


@dataclass
class Parsed:
    results: list[TestResult]
    plan: int | None
    version: str | None
    skip_all: str | None = None  # "1..0 # SKIP reason"
    # Top-level tests whose nested block began and whose result line never came (the
    # binary died inside it): a placeholder named after "# Subtest:" holding the subtests
    # that did report. Their numbers are still missing().
    partial: dict[int, TestResult] = field(default_factory=dict)

    def missing(self) -> list[int]:
        if self.plan is None:
            return []
        seen = {r.number for r in self.results}
        return [n for n in range(1, self.plan + 1) if n not in seen]


@dataclass
class _Level:
    """One level of nesting while parsing: what its lines start with, and its tests."""

    prefix: str
    name: str = ""  # "# Subtest: NAME" inside the block
    next_name: str = ""  # "# Subtest: NAME" before a child block (TAP 14)
    results: list[TestResult] = field(default_factory=list)
    plan: int | None = None
    skip_all: str | None = None
    pending: list[str] = field(default_factory=list)

    def rest(self, line: str) -> str | None:
        return line[len(self.prefix):] if line.startswith(self.prefix) else None

    def diag(self, line: str) -> None:
        rest = self.rest(line)
        s = (line if rest is None else rest).strip()
        if s.startswith("#"):
            self.pending.append(s.lstrip("#").strip())
        elif s:
            self.pending.append(s)

    def finished(self) -> list[TestResult]:
        """Its results, then the tests it planned and never reported, as errors."""
        out = list(self.results)
        seen = {r.number for r in out}
        for n in range(1, (self.plan or 0) + 1):
            if n not in seen:
                out.append(TestResult(f"test_{n}", "error", n, "did not report",
                                      kind="missing"))
        return out


def parse(text: str) -> Parsed:
    """Top-level results, each with its nested subtests (KTAP's indented blocks, the "# "
    blocks of kselftest's runner). A parent's diagnostics keep every line of its nested
    block too, as they always have (flatten() lists the subtests as testcases)."""
    top = _Level("")
    levels = [top]
    version = None
    partial: dict[int, TestResult] = {}
    for line in text.splitlines():
        if version is None:
            m = VERSION_RE.match(line)
            if m:
                version = f"{m.group(1)} {m.group(2)}"
                top.prefix = re.match(r"^\s*", line).group(0)  # type: ignore[union-attr]
                continue
            _flat_line(top, line)  # no version line yet: any indentation is top-level
            continue
        _line(levels, line, partial)
    while len(levels) > 1:
        _close(levels, partial)
    return Parsed(top.results, top.plan, version, top.skip_all, partial)


def flatten(results: list[TestResult]) -> list[TestResult]:
    """Every test, each followed by its subtests (depth first) named PARENT.SUB."""
    out: list[TestResult] = []
    for r in results:
        out.append(r)
        out.extend(replace(s, name=f"{r.name}.{s.name}", subtests=[])
                   for s in flatten(r.subtests))
    return out


def _flat_line(top: _Level, line: str) -> None:
    m = PLAN_RE.match(line)
    if m and top.plan is None:
        _set_plan(top, m)
        return
    m = RESULT_RE.match(line)
    if m:
        top.results.append(_result(m, top.pending))
        top.pending = []
        return
    top.diag(line)


def _line(levels: list[_Level], line: str, partial: dict[int, TestResult]) -> None:
    # A result line closes the levels below its own.
    for i in range(len(levels) - 1, -1, -1):
        rest = levels[i].rest(line)
        m = RESULT_RE.match(rest) if rest is not None else None
        if m and not m.group("indent"):
            while len(levels) > i + 2:
                _close(levels, partial)
            subtests = levels.pop().finished() if len(levels) > i + 1 else []
            for lv in levels[:i]:
                lv.diag(line)
            r = _result(m, levels[i].pending)
            r.subtests = subtests
            failed = next((s for s in subtests if s.status in ("fail", "error")), None)
            if r.status == "fail" and failed:
                r.message = f"{failed.name}: {failed.message}"  # what failed inside
            levels[i].results.append(r)
            levels[i].pending = []
            return
    deepest = levels[-1]
    rest = deepest.rest(line)
    if rest is not None:
        m = PLAN_RE.match(rest)
        if m and not m.group("indent") and deepest.plan is None:
            for lv in levels[:-1]:
                lv.diag(line)
            _set_plan(deepest, m)
            return
        if _opens(levels, rest, line):
            return
        m = SUBTEST_RE.match(rest)
        if m:
            if len(levels) > 1 and not deepest.name and not deepest.results and \
                    deepest.plan is None:
                deepest.name = m.group("name")
            else:
                deepest.next_name = m.group("name")
    for lv in levels:
        lv.diag(line)


def _opens(levels: list[_Level], rest: str, line: str) -> bool:
    """A nested block starting: its version line, or an indented "# Subtest:" (KUnit
    before the version line). An indented plan alone is not enough: a flat program's raw
    output may hold one."""
    deepest = levels[-1]
    m = NESTED_VERSION_RE.match(rest)
    body = ""
    if m:
        prefix = m.group("prefix")
    else:
        prefix = re.match(r"^\s*", rest).group(0)  # type: ignore[union-attr]
        body = rest[len(prefix):]
        if not prefix or not SUBTEST_RE.match(body):
            return False
    for lv in levels:
        lv.diag(line)
    child = _Level(deepest.prefix + prefix, name=deepest.next_name)
    deepest.next_name = ""
    levels.append(child)
    sub = SUBTEST_RE.match(body)
    if sub:
        child.name = sub.group("name")
    return True


def _close(levels: list[_Level], partial: dict[int, TestResult]) -> None:
    """A nested block whose parent never reported: a placeholder for the parent test."""
    child = levels.pop()
    parent = levels[-1]
    n = (parent.results[-1].number if parent.results else 0) + 1
    ph = TestResult(child.name or f"test_{n}", "error", n, "did not report", kind="missing",
                    subtests=child.finished())
    if len(levels) == 1:
        partial[n] = ph
    else:
        parent.results.append(ph)


def _set_plan(level: _Level, m: re.Match[str]) -> None:
    level.plan = int(m.group("n"))
    if level.plan == 0:
        level.skip_all = (m.group("reason") or "no tests planned").strip()


def _result(m: re.Match[str], pending: list[str]) -> TestResult:
    directive = (m.group("directive") or "").upper()
    ok = m.group("ok").lower() == "ok"
    reason = (m.group("reason") or "").strip()
    diag, duration = _split_time(pending)
    msg = ""
    if directive == "SKIP":
        status, msg = "skip", reason
    elif directive in ("TODO", "XFAIL"):
        status = "skip" if not ok else "pass"
        if not ok:
            msg = reason
        elif directive == "XFAIL":  # kselftest's ksft_test_result_xfail: a success
            msg = f"xfail: {reason}" if reason else "xfail"
    elif directive == "XPASS":
        # kselftest: an unexpected pass does not count as passing (ksft_finished).
        status, msg = "fail", (f"xpass: {reason}" if reason else "xpass")
    elif directive in ("TIMEOUT", "ERROR"):
        status, msg = "error", f"{directive.lower()}: {reason}" if reason else directive.lower()
    else:
        status = "pass" if ok else "fail"
        if not ok:
            msg = failure_line(diag) or reason or "test reported not ok"
    name = m.group("name").strip() or f"test_{m.group('num')}"
    return TestResult(_safe(name), status, int(m.group("num")), msg, diag, duration=duration)


def failure_line(diag: list[str]) -> str:
    """The first diagnostic that says what failed, else the last one (the usual place)."""
    lines = [d for d in diag if d.strip()]
    return next((d.strip() for d in lines if FAILING_RE.search(d)),
                lines[-1].strip() if lines else "")


def _split_time(pending: list[str]) -> tuple[list[str], float | None]:
    diag: list[str] = []
    duration = None
    for d in pending:
        m = TIME_RE.match(d)
        if m:
            v = float(m.group("v"))
            duration = v / 1000 if m.group("unit") == "ms" else v
        else:
            diag.append(d)
    return diag, duration


def _safe(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip())
