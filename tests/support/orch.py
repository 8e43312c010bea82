"""orch as a subprocess, the way a user or a CI job runs it: `python -m orchestrator`.

`orch(...)` waits and returns the CompletedProcess (text, stdout and stderr captured);
`orch_popen(...)` starts it and returns the Popen. `env` is added to the caller's
environment, not a replacement for it (unless `inherit=False`: then it is the whole
environment, e.g. one without SSH_AUTH_SOCK).
"""

from __future__ import annotations

import os
import subprocess
import sys

ORCH = [sys.executable, "-m", "orchestrator"]


def orch_env(env: dict[str, str] | None = None, inherit: bool = True) -> dict[str, str]:
    return {**(os.environ if inherit else {}), **(env or {})}


def orch(*args: str, env: dict[str, str] | None = None, inherit: bool = True, cwd=None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*ORCH, *map(str, args)], capture_output=True, text=True,
                          env=orch_env(env, inherit), cwd=cwd, timeout=timeout)


def orch_popen(*args: str, env: dict[str, str] | None = None, inherit: bool = True, cwd=None,
               **kw) -> subprocess.Popen:
    return subprocess.Popen([*ORCH, *map(str, args)], env=orch_env(env, inherit), cwd=cwd,
                            **kw)
