"""A finished LAVA job (targets/lava/target.py `LavaOutcome`) as orch's records: one `Suite` per
test binary, as `--target qemu` would have written it.

- The verdicts are LAVA's: the cases the guest reported with `lava-test-case`, grouped by
  `lava-test-set` (one set per binary); LAVA's `unknown` is orch's `error`.
- The detail comes from the console: the guest frames each binary's output (lavaguest.py),
  and the same classification as the SSH path (suite.classify) gives each case its kind,
  message, diagnostics and time, and the binary its .ktap and .dmesg files.
- LAVA calls a job whose kernel crashed an infrastructure error ("Connection closed"): the
  console is read first. A binary whose frame began and never ended ended in a crash (an
  oops or panic on the console after its start: the binary's failure, with orch's crash
  record, lostmachine.reclassify) or in real infrastructure trouble (an error); the binaries
  after it did not run, as on the SSH path. Cases reported before keep their verdicts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.kernel import problems
from orchestrator.targets.lava.guest import FRAME
from orchestrator.testing import lostmachine
from orchestrator.testing.ktap import TestResult
from orchestrator.testing.testrun import Suite, classify

STATUS = {"pass": "pass", "fail": "fail", "skip": "skip", "unknown": "error"}
PRINTK_RE = re.compile(r"^\s*\[\s*\d+\.\d+\]")  # a kernel console line (printk.time=1)
# A printk that landed in the middle of a test's line on the shared serial console
# (printk's own "[%5lu.%06lu]" stamp).
MIDLINE_PRINTK_RE = re.compile(r"\[\s*\d+\.\d{6}\] ")
END_RE = re.compile(rf"^{FRAME} end (?P<name>\S+) rc=(?P<rc>-?\d+) secs=(?P<secs>[\d.]+)")
LAVA_GONE = "lava"  # kind: the LAVA job ended under a binary, not by a crash


@dataclass
class Frame:
    """What the console says of one binary: its output, exit status and time."""

    name: str
    start: int  # the console line of its begin marker
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    kernel: list[str] = field(default_factory=list)  # kernel lines while it ran
    exit_code: int | None = None
    seconds: float = 0.0
    ended: bool = False
    dmesg_problem: str = ""  # the first problem line the guest found in the kernel log


@dataclass
class _Run:
    """A binary's run as suite.classify reads it."""

    stdout: str
    stderr: str
    exit_code: int | None
    lost: bool
    timed_out: bool = False


def frames(console: list[str]) -> dict[str, Frame]:
    """Each binary's frame on the console, by name."""
    found: dict[str, Frame] = {}
    cur: Frame | None = None
    into = "stdout"
    for i, ln in enumerate(console):
        if ln.startswith(f"{FRAME} "):
            word, _, rest = ln[len(FRAME) + 1:].partition(" ")
            if word == "begin":
                cur = found[rest.strip()] = Frame(rest.strip(), i)
                into = "stdout"
            elif word == "stderr" and cur is not None:
                into = "stderr"
            elif word == "dmesg" and rest.partition(":")[0] in found:
                found[rest.partition(":")[0]].dmesg_problem = rest.partition(": ")[2]
            m = END_RE.match(ln)
            if m and cur is not None and m.group("name") == cur.name:
                cur.exit_code, cur.seconds = int(m.group("rc")), float(m.group("secs"))
                cur.ended, cur = True, None
            continue
        if cur is None or ln.startswith("<LAVA_SIGNAL"):
            continue
        if PRINTK_RE.match(ln):
            cur.kernel.append(ln)
            continue
        m = MIDLINE_PRINTK_RE.search(ln, 1)
        if m:  # the test's part stays its line, the kernel's part is the kernel's
            ln, kernel = ln[:m.start()], ln[m.start():]
            cur.kernel.append(kernel)
        getattr(cur, into).append(ln)
    return found


def crash_after(console: list[str], start: int) -> tuple[str, str] | None:
    """The first kernel problem line (kernel/problems.py) after console line `start`, with
    the lines after it."""
    for i in range(start, len(console)):
        if problems.is_problem(console[i]):
            return console[i].strip(), "\n".join(console[i:i + 60])
    return None


def _kind(binary: str, case: str, status: str) -> str:
    """A case's kind when the console has no detail (a server's results alone)."""
    if case in ("dmesg_clean", "timeout", "exit_status"):
        return case
    if case == binary:
        return "exit_code"
    if status == "error" and re.fullmatch(r"test_\d+", case):
        return "missing"
    return "ktap"


def _merge(binary: str, reported: list[dict], detail: list[TestResult],
           frame: Frame | None) -> list[TestResult]:
    """LAVA's cases, in its order, with orch's detail for the same names."""
    by_name = {c.name: c for c in detail}
    out = []
    for r in reported:
        case, status = str(r.get("case", "")), STATUS.get(str(r.get("result")), "error")
        if case == "dmesg_clean":
            t = TestResult(case, status, kind="dmesg_clean")
            if status == "fail":
                said = frame.dmesg_problem if frame else ""
                t.message = f"kernel reported during {binary}: {said}".rstrip(": ")
                t.diagnostics = list(frame.kernel) if frame else []
        elif case in by_name:
            t = replace(by_name[case], status=status)
        else:
            t = TestResult(case, status, kind=_kind(binary, case, status))
        out.append(t)
    return out


def suites(outcome, arch: str, binaries: list[str], timeout: float,
           outdir: Path | None = None) -> tuple[list[Suite], lostmachine.Lost | None]:
    """One Suite per binary (in the run's order) from a finished job, and why the binaries
    after the last one that finished did not run (None: they all ran). `outcome` is a
    targets.lava.log.LavaOutcome; `outdir` gets each binary's .ktap and .dmesg."""
    reported: dict[str, list[dict]] = {}
    for r in outcome.results:
        reported.setdefault(str(r.get("set", "")), []).append(r)
    framed = frames(outcome.console)
    out: list[Suite] = []
    gone: lostmachine.Lost | None = None
    for name in binaries:
        s = Suite(arch, name)
        out.append(s)
        f = framed.get(name)
        if gone is None and f is None and name not in reported:
            gone = lostmachine.Lost(LAVA_GONE, f"the LAVA job ended before {name}: {outcome.why()}")
        if gone is not None:
            s.cases.append(TestResult(
                name, "error" if gone.infrastructure else "skip",
                message=f"not run: {gone.message}",
                kind=gone.kind if gone.infrastructure else "crash"))
            continue
        detail: list[TestResult] = []
        if f is not None:
            run = _Run("\n".join(f.stdout), "\n".join(f.stderr), f.exit_code, not f.ended)
            s.duration, s.exit_code = f.seconds, f.exit_code
            s.output = run.stdout + (("\n--- stderr ---\n" + run.stderr) if run.stderr else "")
            s.dmesg = "\n".join(f.kernel)
            detail = classify(name, run, f.seconds, timeout)
        if f is not None and not f.ended:
            crash = crash_after(outcome.console, f.start)
            gone = lostmachine.Lost(lostmachine.CRASH, f"kernel crashed during {name}: {crash[0]}",
                               crash[1]) if crash else \
                lostmachine.Lost(LAVA_GONE, f"the LAVA job ended during {name}: {outcome.why()}")
            s.cases = detail
            lostmachine.reclassify(s, gone)
        elif name in reported or f is None:
            s.cases = _merge(name, reported.get(name, []), detail, f)
        else:  # the console has it all, LAVA recorded nothing: orch's reading
            s.cases = detail + [TestResult(
                "dmesg_clean", "fail" if f.dmesg_problem else "pass", kind="dmesg_clean",
                message=f"kernel reported during {name}: {f.dmesg_problem}"
                if f.dmesg_problem else "")]
        if outdir is not None:
            outdir.mkdir(parents=True, exist_ok=True)
            (outdir / f"{name}.ktap").write_text(s.output)
            (outdir / f"{name}.dmesg").write_text(s.dmesg)
    return out, gone
