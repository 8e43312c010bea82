"""orch's own SIGTERM and SIGINT: they stop the whole run, once. (Its children's signals
are runner.py's and its watchdog's.)"""

from __future__ import annotations

import signal

from orchestrator.base.errors import Interrupted

_SIGNALLED: list[int] = []


def install_signal_handlers() -> None:
    """SIGTERM and SIGINT stop the whole run, once: the first raises Interrupted wherever
    orch is (a stage, a test over SSH, a child's wait); later ones are ignored, so that
    the unwinding (killing QEMU, writing the partial results) is not cut short."""

    def _stop(signum, frame):  # noqa: ARG001
        if _SIGNALLED:
            return
        _SIGNALLED.append(signum)
        name = "SIGINT (Ctrl-C)" if signum == signal.SIGINT else signal.Signals(signum).name
        raise Interrupted(f"interrupted by {name}")

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def check() -> None:
    """Raise Interrupted again when orch was signalled and the first raise got lost: a
    signal handler's exception inside a gc callback is printed and dropped ("Exception
    ignored in..."), and Hypothesis (orch fuzz) runs gc callbacks all the time. Loops
    that call no code of orch's for long (fuzzing, shrinking) call this."""
    if _SIGNALLED:
        signum = _SIGNALLED[0]
        name = "SIGINT (Ctrl-C)" if signum == signal.SIGINT else signal.Signals(signum).name
        raise Interrupted(f"interrupted by {name}")
