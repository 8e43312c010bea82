"""What happened when the connection to the machine went down during a test.

Three different things look the same from the SSH client (a channel that closes, a
transport that dies), and they are opposite verdicts:

- the kernel crashed (a panic or an oops on the console): the *test's* result, a failure
  (exit 1, bad for a bisection), with the console excerpt in the JUnit;
- QEMU died (killed, OOM-killed, gone): infrastructure (exit 3, skip for a bisection);
- SSH went away while the guest lives on: infrastructure too.

The console is read by another thread and QEMU may take a moment to exit after a panic,
so `diagnose` waits a little for the evidence before it decides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from orchestrator.targets import qemu
from orchestrator.testing.ktap import TestResult

CRASH = "crash"  # the kernel crashed: a test failure
QEMU_GONE = "qemu"  # the machine died under the test: infrastructure
SSH_LOST = "ssh"  # the connection died, the machine did not: infrastructure


@dataclass
class Lost:
    kind: str
    message: str  # the one line
    excerpt: str = ""  # console lines from the crash on

    @property
    def infrastructure(self) -> bool:
        return self.kind != CRASH


def diagnose(guest: qemu.Guest | None, binary: str, since: int = 0, detail: str = "",
             wait: float = 5.0) -> Lost:
    """Classify a connection lost while `binary` ran on `guest`, whose console had `since`
    lines when the binary started (None: a machine orch has no console of, e.g. a board
    over SSH: always infrastructure)."""
    said = f": {detail}" if detail else ""
    if guest is None:
        return Lost(SSH_LOST, f"SSH connection lost during {binary}{said}")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if guest.panicked.is_set() or guest.exited.is_set():
            break
        time.sleep(0.05)
    if guest.exited.is_set():
        time.sleep(0.3)  # the reader thread has the last console lines
    code = guest.proc.poll() if guest.proc else None
    if code is not None and code < 0:
        # Killed by a signal: the host did it, whatever the console says.
        note = " (the host's OOM killer, or another process)" if code == -9 else ""
        return Lost(QEMU_GONE, f"QEMU {qemu.exit_status(code)} during {binary}{note}")
    crash = guest.problem_since(since, n=200)  # the whole report, for crash triage
    if crash:
        line, excerpt = crash
        return Lost(CRASH, f"kernel crashed during {binary}: {line}", excerpt)
    if code is not None:
        return Lost(QEMU_GONE, f"QEMU {qemu.exit_status(code)} during {binary} (the guest "
                    f"powered off or rebooted)")
    return Lost(SSH_LOST, f"SSH connection lost during {binary} (guest still running){said}")


def reclassify(suite, lost: Lost) -> None:
    """Rewrite the results of the binary the connection was lost in (a testrun.Suite):

    - a crash: the binary's own failure. A `kernel_crash` failure carries the one line and
      the console excerpt; its tests that did not report fail too ("the kernel crashed"),
      not errors, and the `ssh` error goes.
    - infrastructure: the `ssh` error says what happened (QEMU killed, SSH lost).
    """
    cases = [c for c in suite.cases if not (c.name == "ssh" and c.status == "error")]
    if lost.kind == CRASH:
        for c in cases:
            if c.status == "error":
                c.status = "fail"
                c.message = "did not report: the kernel crashed"
        cases.append(TestResult("kernel_crash", "fail", message=lost.message,
                                diagnostics=lost.excerpt.splitlines(), kind="crash"))
    else:
        cases.append(TestResult(lost.kind, "error", message=lost.message, kind=lost.kind))
    suite.cases = cases
