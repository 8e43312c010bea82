"""Host helpers the tests share: `git` with a fixed identity, and the QEMU processes a
test started (found by a marker on their command line)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t"}


def git(cwd: Path | str, *args: str) -> str:
    """`git -C cwd ARGS` (author and committer `t <t@t>`): its stdout; a failure raises
    CalledProcessError."""
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **IDENTITY}).stdout


def qemu_alive(marker: str) -> list[str]:
    """The QEMU processes whose command line holds `marker` (`pgrep -af` lines)."""
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if "qemu-system" in ln]
