"""Running the selftests in the guest: one binary at a time, each with its own timeout,
dmesg read before and after, KTAP parsed into results.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ktap
from .rootfs import TESTS_DIR
from .ssh import GuestSSH

DMESG_PROBLEM_RE = re.compile(
    r"(WARNING:|BUG:|Oops|KASAN|UBSAN|general protection fault|Unable to handle kernel|"
    r"possible circular locking|possible recursive locking|inconsistent lock state|"
    r"suspicious RCU usage|Kernel panic|Internal error:|INFO: task .* blocked|"
    r"bad page state|BUG kmalloc)",
)


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


def dmesg_problems(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if DMESG_PROBLEM_RE.search(ln)]


def run_binary(ssh: GuestSSH, arch: str, name: str, timeout: float, outdir: Path) -> Suite:
    suite = Suite(arch, name)
    before = ssh.run("dmesg -c", timeout=30)
    if before.lost or before.timed_out:
        suite.cases.append(ktap.TestResult(name, "error", message="SSH lost before the test"))
        return suite
    start = time.monotonic()
    # The guest's own timeout kills a hung test; the host-side one is the backstop.
    res = ssh.run(f"cd /tmp && timeout -s KILL {int(timeout)} {TESTS_DIR}/{name}",
                  timeout=timeout + 20)
    suite.duration = time.monotonic() - start
    suite.output = res.stdout + (("\n--- stderr ---\n" + res.stderr) if res.stderr else "")
    suite.exit_code = res.exit_code
    parsed = ktap.parse(res.stdout)
    suite.cases = list(parsed.results)
    if parsed.skip_all is not None and not suite.cases:
        suite.cases.append(ktap.TestResult(name, "skip", message=parsed.skip_all))
    # Killed by the guest's timeout: exit 137, or -1 when the channel reports only a signal.
    hung = res.timed_out or (res.exit_code in (124, 137, -1)
                             and suite.duration >= timeout - 1)
    for n in parsed.missing():
        why = (f"did not report: test binary killed after {timeout:.0f}s timeout" if hung
               else f"did not report (binary exited with status {res.exit_code})")
        suite.cases.append(ktap.TestResult(f"test_{n}", "error", n, why))
    if hung:
        suite.cases.append(ktap.TestResult("timeout", "error",
                                           message=f"{name} hung: killed after {timeout:.0f}s"))
    elif res.lost:
        suite.cases.append(ktap.TestResult("ssh", "error",
                                           message=f"SSH connection lost during {name}: "
                                           f"{res.stderr.strip()}"))
    elif parsed.plan is None and not suite.cases:
        suite.cases.append(ktap.TestResult(name, "error",
                                           message=f"no KTAP output (exit {res.exit_code})"))
    elif res.exit_code not in (0, None) and not any(c.status == "fail" for c in suite.cases):
        suite.cases.append(ktap.TestResult("exit_status", "error",
                                           message=f"{name} exited with {res.exit_code} "
                                           f"without reporting a failing test"))
    if not res.lost:
        after = ssh.run("dmesg -c", timeout=30)
        suite.dmesg = after.stdout
        problems = dmesg_problems(after.stdout)
        if problems:
            suite.cases.append(ktap.TestResult(
                "dmesg_clean", "fail",
                message=f"kernel reported during {name}: {problems[0].strip()}",
                diagnostics=after.stdout.splitlines()))
        else:
            suite.cases.append(ktap.TestResult("dmesg_clean", "pass"))
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / f"{name}.ktap").write_text(suite.output)
    (outdir / f"{name}.dmesg").write_text(suite.dmesg)
    return suite
