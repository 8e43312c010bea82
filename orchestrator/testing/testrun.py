"""Running the selftests on the target: one binary at a time, each with its own timeout,
the kernel log read from a marker written before it (never cleared: the machine may be
shared), its output turned into results:

- KTAP: one testcase per test, nested subtests as PARENT.SUB (ktap);
- no KTAP, a text format known for the program (textformats): one testcase per test line;
- no KTAP otherwise: one testcase named after the program, kind `exit_code`, its status
  from kselftest's exit code (kselftest.verdict: 2 xfail is a pass, 3 xpass a failure).

A hang (timeout error) or a lost machine (ssh error; lostmachine makes a crash `kernel_crash`)
is classified the same way whatever the program printed.
"""

from __future__ import annotations

import re
import shlex
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.base.errors import EXIT_INFRA, EXIT_PASS, EXIT_TEST_FAILED
from orchestrator.kernel import problems
from orchestrator.results.record import TestCase, cap
from orchestrator.targets.layout import TESTS_DIR
from orchestrator.targets.ssh import Session
from orchestrator.testing import kselftest, ktap, textformats

_STARTS_KTAP = re.compile(r"(?:K?TAP version \d+)")
# Testcases that share the binary's wall time when none has its own: KTAP tests, and the
# tests of a program's text format (textformats).
SPLIT_KINDS = ("ktap", "text")


@dataclass
class Suite:
    """One test binary's run on one arch."""

    arch: str
    binary: str
    cases: list[ktap.TestResult] = field(default_factory=list)
    duration: float = 0.0
    output: str = ""
    dmesg: str = ""
    exit_code: int | None = None

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.binary}"

    def counts(self) -> dict[str, int]:
        c = {"pass": 0, "fail": 0, "skip": 0, "error": 0}
        for t in self.cases:
            c[t.status] += 1
        return c


def nothing_ran(suites: list[Suite]) -> bool:
    """No test really ran (each one skipped, or none): never a pass. dmesg_clean does not
    count: it passes whenever the kernel stayed quiet."""
    return not any(c.name != "dmesg_clean" and c.status in ("pass", "fail")
                   for s in suites for c in s.cases)


def verdict(suites: list[Suite], lost: bool) -> tuple[int, bool]:
    """One arch's test exit code from its suites, and whether no test really ran (then the
    code is 1, never a pass; git bisect reads it as "cannot test"). `lost`: the machine or
    the connection went away: infrastructure (3), whatever the tests said before.
    `orch run` (run/stages.py) and `orch lava collect` (cli/lava.py) both take it here."""
    if lost:
        return EXIT_INFRA, False
    if any(s.counts()["fail"] or s.counts()["error"] for s in suites):
        return EXIT_TEST_FAILED, False
    if nothing_ran(suites):
        return EXIT_TEST_FAILED, True
    return EXIT_PASS, False


def repeated(suite: Suite, run: int, runs: int) -> None:
    """--repeat: `suite` is run `run` of `runs` of its binary, the first that failed or
    the last. A failure says which run it was; a pass after several runs says how many
    (on the binary's first case: its record's message)."""
    if runs == 1:
        return
    bad = [t for t in suite.cases if t.status in ("fail", "error")]
    for t in bad:
        t.message = f"run {run} of {runs}: {t.message}" if t.message else \
            f"run {run} of {runs}"
    if not bad and suite.cases:
        first = suite.cases[0]
        note = f"passed {run} runs of {runs}" if first.status == "pass" else \
            f"{run} runs of {runs}"
        first.message = f"{note}: {first.message}" if first.message else note


def dmesg_problems(text: str) -> list[str]:
    """The kernel log's problem lines (kernel/problems.py; the LAVA guest greps the same)."""
    return [ln for ln in text.splitlines() if problems.is_problem(ln)]


def mark_kmsg(ssh: Session, name: str) -> tuple[str, bool]:
    """Write a marker line into the kernel log; the log after it belongs to this binary.

    A position, not `dmesg -c`: clearing would wipe the log of a machine others use. (LTP
    marks its tests in /dev/kmsg the same way.) Returns (marker, ssh still up).
    """
    marker = f"orch: begin {name} {uuid.uuid4().hex[:12]}"
    res = ssh.run(f"echo {shlex.quote(marker)} > /dev/kmsg", timeout=30)
    return marker, not (res.lost or res.timed_out)


def kmsg_since(ssh: Session, marker: str) -> str:
    """The kernel log after `marker` (the whole log, with a note, if it has wrapped away)."""
    awk = "awk -v m=" + shlex.quote(marker) + \
        " 'f{print} index($0,m){f=1} END{if(!f)exit 3}'"
    res = ssh.run(f"dmesg | {awk}", timeout=30)
    if res.exit_code == 3:
        whole = ssh.run("dmesg", timeout=30)
        return "orch: the marker left the kernel log buffer (it wrapped): whole log\n" + \
            whole.stdout
    return res.stdout


NO_LIMIT = 86400.0  # a kselftest `timeout=0`: no limit; a day stands for it


def run_binary(ssh: Session, arch: str, name: str, timeout: float | None, outdir: Path,
               path: str | None = None, cwd: str = "/tmp", args: tuple[str, ...] = (),
               program: str | None = None) -> Suite:
    """Run one test binary (`path` on the target, default orch's initramfs location) as
    the suite `name`; `program`: its file name, for its text format (default: `name`)."""
    suite = Suite(arch, name)
    path = path or f"{TESTS_DIR}/{name}"
    timeout = NO_LIMIT if timeout is None else timeout
    command = " ".join(shlex.quote(w) for w in (path, *args))
    marker, up = mark_kmsg(ssh, name)
    if not up:
        suite.cases.append(ktap.TestResult(name, "error", message="SSH lost before the test",
                                           kind="ssh"))
        return suite
    start = time.monotonic()
    # The guest's own timeout kills a hung test; the host-side one is the backstop.
    res = ssh.run(f"cd {shlex.quote(cwd)} && timeout -s KILL {int(timeout)} "
                  f"{command}", timeout=timeout + 20)
    suite.duration = time.monotonic() - start
    suite.output = res.stdout + (("\n--- stderr ---\n" + res.stderr) if res.stderr else "")
    suite.exit_code = res.exit_code
    suite.cases = classify(name, res, suite.duration, timeout, program)
    if not res.lost:
        suite.dmesg = kmsg_since(ssh, marker)
        problems = dmesg_problems(suite.dmesg)
        if problems:
            suite.cases.append(ktap.TestResult(
                "dmesg_clean", "fail",
                message=f"kernel reported during {name}: {problems[0].strip()}",
                diagnostics=suite.dmesg.splitlines(), kind="dmesg_clean"))
        else:
            suite.cases.append(ktap.TestResult("dmesg_clean", "pass", kind="dmesg_clean"))
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / f"{name}.ktap").write_text(suite.output)
    (outdir / f"{name}.dmesg").write_text(suite.dmesg)
    return suite


def classify(name: str, res, duration: float, timeout: float,
             program: str | None = None) -> list[ktap.TestResult]:
    """One binary's testcases from its run, before the dmesg check. `res`: its stdout,
    stderr, exit_code, and whether it was cut short (timed_out: the host's timeout; lost:
    the machine went away); `program`: its file name, for its text format (default:
    `name`). Also what a LAVA job's console says of a binary (testing/lavaresults.py), so
    both paths name and judge tests alike."""
    parsed = ktap.parse(res.stdout)
    # Killed by the guest's timeout: exit 137, or -1 when the channel reports only a signal.
    hung = res.timed_out or (res.exit_code in (124, 137, -1) and duration >= timeout - 1)
    # A program with a text format of its own is read by it unless its output starts as a
    # KTAP document: 6.1's run_vmtests.sh prints its own lines around programs that may
    # print TAP of theirs; 6.12's starts with "TAP version 13".
    own_format = textformats.lookup(program or name) is not None and \
        not _STARTS_KTAP.match(res.stdout.lstrip())
    is_ktap = not own_format and (parsed.version is not None or parsed.plan is not None
                                  or bool(parsed.results))
    if is_ktap:
        cases = _ktap_cases(parsed, name, res.exit_code, hung, timeout)
    else:
        cases = _text_cases(program or name, res, hung, timeout)
    cut = _cut_short(name, res, hung, timeout)
    failed = any(c.status == "fail" for c in cases)
    if cut:
        cases.append(cut)
    elif is_ktap and parsed.plan is None and not cases:
        cases.append(ktap.TestResult(name, "error",
                                     message=f"no KTAP output (exit {res.exit_code})",
                                     kind="no_ktap"))
    elif is_ktap and res.exit_code not in (0, None, kselftest.XFAIL, kselftest.SKIP) \
            and not failed:
        # kselftest's exits 2 (xfail) and 4 (skip: ksft_exit_skip, after "1..0 # SKIP" or
        # skipped tests) say nothing the KTAP did not; any other one is an unreported error.
        cases.append(_exit_status(f"{name} exited with {res.exit_code} without "
                                  f"reporting a failing test"))
    elif not is_ktap and not cases:
        # kselftest's convention for a program that reports no tests: its exit code.
        cases.append(kselftest.exit_case(name, res.exit_code, _text(res)))
    elif not is_ktap and not failed:
        status, label = kselftest.verdict(res.exit_code)
        if status in ("fail", "error"):
            cases.append(_exit_status(f"{name} ended with {label}, without reporting "
                                      f"a failing test"))
    return cases

def _ktap_cases(parsed: ktap.Parsed, name: str, code: int | None, hung: bool,
                timeout: float) -> list[ktap.TestResult]:
    """A KTAP program's tests (nested subtests as PARENT.SUB), then those it planned and
    never reported, as errors."""
    cases = ktap.flatten(parsed.results)
    if parsed.skip_all is not None and not cases:
        cases.append(ktap.TestResult(name, "skip", message=parsed.skip_all))
    for n in parsed.missing():
        why = (f"did not report: test binary killed after {timeout:.0f}s timeout" if hung
               else f"did not report (binary exited with status {code})")
        began = parsed.partial.get(n)  # its nested block began: its name, its subtests
        cases.extend(ktap.flatten([ktap.TestResult(
            began.name if began else f"test_{n}", "error", n, why, kind="missing",
            subtests=began.subtests if began else [])]))
    return cases


def _text_cases(name: str, res, hung: bool, timeout: float) -> list[ktap.TestResult]:
    """A program without KTAP: one testcase per line of its text format, if it has one
    (textformats); the test it was in when it died is an error (hung, machine lost: a
    crash makes it a failure in lostmachine.reclassify) or takes the exit code's verdict."""
    fmt = textformats.lookup(name)
    if fmt is None:
        return []
    parsed = textformats.parse(fmt, res.stdout)
    cases = list(parsed.results)
    last = parsed.unfinished
    if last is not None:
        if hung:
            last.message = f"did not finish: {name} killed after {timeout:.0f}s timeout"
        elif res.lost:
            last.message = "did not finish: the connection to the machine was lost"
        else:
            status, label = kselftest.verdict(res.exit_code)
            said = ktap.failure_line(res.stderr.splitlines())
            last.status = "error" if status == "pass" else status
            last.message = f"did not finish: {label or 'exit 0'}" + (f": {said}" if said else "")
            last.diagnostics += [ln for ln in res.stderr.splitlines() if ln.strip()]
        cases.append(last)
    return cases


def _cut_short(name: str, res, hung: bool, timeout: float) -> ktap.TestResult | None:
    if hung:
        return ktap.TestResult("timeout", "error",
                               message=f"{name} hung: killed after {timeout:.0f}s",
                               kind="timeout")
    if res.lost:
        return ktap.TestResult("ssh", "error", message=f"SSH connection lost during {name}: "
                               f"{res.stderr.strip()}", kind="ssh")
    return None


def _exit_status(message: str) -> ktap.TestResult:
    return ktap.TestResult("exit_status", "error", message=message, kind="exit_status")


def _text(res) -> str:
    return res.stdout + (("\n" + res.stderr) if res.stderr else "")


def infra_suite(arch: str, stage: str, message: str, detail: str = "") -> Suite:
    """A stage that failed before tests could run still shows up in JUnit, as an error."""
    s = Suite(arch, f"orch-{stage}")
    s.cases.append(ktap.TestResult(stage, "error", message=message,
                              diagnostics=detail.splitlines(), kind="stage"))
    return s


def record_cases(cell: str, suite: Suite, file: str, logs: dict[str, str]) -> list[TestCase]:
    """A test binary's results (a Suite) as record testcases.

    A KTAP test's duration is its own `# time=` line (selftests/ktap.h prints one). When
    a binary prints none, its wall time is split evenly over its KTAP tests and labelled
    duration_source "binary-split"; orch's checks that stand for the whole binary
    (timeout, ssh, exit_status, no_ktap) get the binary's time, "orch".
    """
    ktap_cases = [t for t in suite.cases if t.kind in SPLIT_KINDS]
    timed = any(t.duration is not None for t in ktap_cases)
    split = suite.duration / len(ktap_cases) if ktap_cases and not timed else None
    out = []
    for t in suite.cases:
        if t.duration is not None:
            duration, source = round(t.duration, 6), "ktap"
        elif t.kind in SPLIT_KINDS and split is not None:
            duration, source = round(split, 6), "binary-split"
        elif t.kind in ("timeout", "ssh", "exit_status", "no_ktap", "crash", "qemu",
                        "exit_code"):
            duration, source = round(suite.duration, 3), "orch"
        else:
            duration, source = 0.0, ""
        out.append(TestCase(cell=cell, binary=suite.binary, name=t.name, status=t.status,
                            kind=t.kind, message=t.message, duration=duration,
                            duration_source=source, file=file, logs=dict(logs),
                            output=cap("\n".join(t.diagnostics)), reports=t.reports))
    return out
