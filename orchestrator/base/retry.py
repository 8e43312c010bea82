"""Retry and poll loops, stated with tenacity rather than written by hand: each names what
it retries (the exceptions that mean "not yet"), when it stops, how long it waits, and says
why it tries again (to the caller's status line when it has one, else the "orch.retry"
logger). When it stops, the last exception is raised as it was."""

from __future__ import annotations

import logging
from typing import Callable

import tenacity
from tenacity import stop_after_attempt, stop_after_delay, stop_never, wait_fixed

__all__ = ["retrying", "stop_after_attempt", "stop_after_delay", "stop_never", "wait_fixed"]

LOG = logging.getLogger("orch.retry")


def retrying(what: str, on: type[BaseException] | tuple[type[BaseException], ...], *,
             stop: tenacity.stop.stop_base, wait: tenacity.wait.wait_base,
             say: Callable[[str], None] | None = None) -> tenacity.Retrying:
    """`retrying(...)(fn, *args)` calls fn until it returns, raises something else than
    `on`, or `stop` says enough (then `on`'s last exception is raised)."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        (say or LOG.info)(f"{what}: {exc}; try {state.attempt_number + 1}")

    return tenacity.Retrying(retry=tenacity.retry_if_exception_type(on), stop=stop,
                             wait=wait, reraise=True, before_sleep=before_sleep)
