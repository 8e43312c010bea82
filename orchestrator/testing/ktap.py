"""KTAP (and TAP 13) parser: test binary output in, one result per test out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RESULT_RE = re.compile(
    r"^(?P<indent>\s*)(?P<ok>ok|not ok)\s+(?P<num>\d+)\s*(?:-\s*)?(?P<name>[^#]*?)\s*"
    r"(?:#\s*(?P<directive>SKIP|TODO|XFAIL)\b\s*(?P<reason>.*))?$",
    re.I,
)
PLAN_RE = re.compile(r"^(?P<indent>\s*)1\.\.(?P<n>\d+)(?:\s*#\s*(?:SKIP\b)?\s*(?P<reason>.*))?$",
                     re.I)
VERSION_RE = re.compile(r"^\s*(K?TAP) version (\d+)")
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
    # exit_status, missing (planned, never reported), no_ktap; "stage" for a failed stage.
    kind: str = "ktap"
    duration: float | None = None  # seconds, when measured (ktap.h's "# time=" line)


@dataclass
class Parsed:
    results: list[TestResult]
    plan: int | None
    version: str | None
    skip_all: str | None = None  # "1..0 # SKIP reason"

    def missing(self) -> list[int]:
        if self.plan is None:
            return []
        seen = {r.number for r in self.results}
        return [n for n in range(1, self.plan + 1) if n not in seen]


def parse(text: str) -> Parsed:
    """Top-level results only; nested subtests' lines are kept as diagnostics."""
    results: list[TestResult] = []
    plan = None
    version = None
    skip_all = None
    pending: list[str] = []
    top_indent: str | None = None
    for line in text.splitlines():
        if version is None:
            m = VERSION_RE.match(line)
            if m:
                version = f"{m.group(1)} {m.group(2)}"
                top_indent = re.match(r"^\s*", line).group(0)  # type: ignore[union-attr]
                continue
        m = PLAN_RE.match(line)
        if m and (top_indent is None or m.group("indent") == top_indent) and plan is None:
            plan = int(m.group("n"))
            if plan == 0:
                skip_all = (m.group("reason") or "no tests planned").strip()
            continue
        m = RESULT_RE.match(line)
        if m and (top_indent is None or m.group("indent") == top_indent):
            directive = (m.group("directive") or "").upper()
            ok = m.group("ok").lower() == "ok"
            if directive == "SKIP":
                status = "skip"
            elif directive in ("TODO", "XFAIL"):
                status = "skip" if not ok else "pass"
            else:
                status = "pass" if ok else "fail"
            name = m.group("name").strip() or f"test_{m.group('num')}"
            reason = (m.group("reason") or "").strip()
            diag, duration = _split_time(pending)
            msg = reason if status == "skip" else ""
            if status == "fail":
                msg = failure_line(diag) or "test reported not ok"
            results.append(TestResult(_safe(name), status, int(m.group("num")), msg, diag,
                                      duration=duration))
            pending = []
            continue
        s = line.strip()
        if s.startswith("#"):
            pending.append(s.lstrip("#").strip())
        elif s:
            pending.append(s)
    return Parsed(results, plan, version, skip_all)


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
