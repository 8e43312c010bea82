"""Test-only fault hooks, read from the environment. They exist so that the slow tests can
put orch in a precise state that real work reaches too briefly to hit on purpose; nothing
sets them in normal use, and they are documented as test hooks in the README.

  ORCH_TEST_INTERNAL_ERROR=STAGE  when STAGE starts, raise an exception that is not an
                                  OrchError: the path an orch bug takes
  ORCH_TEST_HOLD=STAGE            when STAGE starts (its "running" status written to
                                  metadata.json), wait up to 10 minutes, so that a test can
                                  signal orch while it is inside STAGE
"""

from __future__ import annotations

import os
import time

from orchestrator.base.errors import InternalError


def at_stage(name: str) -> None:
    if os.environ.get("ORCH_TEST_INTERNAL_ERROR") == name:
        raise InternalError(f"ORCH_TEST_INTERNAL_ERROR={name} (test hook)")
    if os.environ.get("ORCH_TEST_HOLD") == name:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            time.sleep(0.1)
