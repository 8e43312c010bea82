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


@dataclass
class TestResult:
    name: str
    status: str  # "pass", "fail", "skip", "error"
    number: int = 0
    message: str = ""
    diagnostics: list[str] = field(default_factory=list)


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
            diag = [d for d in pending]
            msg = reason if status == "skip" else ""
            if status == "fail":
                msg = next((d for d in reversed(diag) if d), "") or "test reported not ok"
            results.append(TestResult(_safe(name), status, int(m.group("num")), msg, diag))
            pending = []
            continue
        s = line.strip()
        if s.startswith("#"):
            pending.append(s.lstrip("#").strip())
        elif s:
            pending.append(s)
    return Parsed(results, plan, version, skip_all)


def _safe(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip())
