"""A fake SSH session (the shape of targets.ssh.Session) for tests of what orch decides
from a target's answers, without a machine.

`answers` is a list of (substring, answer): the first substring found in a command picks
the answer, which is a str (stdout, exit 0), a CmdResult, or a callable taking the command
and returning a CmdResult. A command matching nothing succeeds with no output. What ran
and what was uploaded are recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

from orchestrator.targets.ssh import CmdResult

Answer = Union[str, CmdResult, Callable[[str], CmdResult]]


class FakeSession:
    where = "fake:22"

    def __init__(self, answers: list[tuple[str, Answer]] | None = None):
        self.answers = list(answers or [])
        self.ran: list[str] = []
        self.uploads: list[tuple[str, str]] = []
        self.sudo = False

    def run(self, command: str, timeout: float | None = None) -> CmdResult:
        self.ran.append(command)
        for key, ans in self.answers:
            if key in command:
                if isinstance(ans, CmdResult):
                    return ans
                if callable(ans):
                    return ans(command)
                return CmdResult(0, ans, "", 0.0)
        return CmdResult(0, "", "", 0.0)

    def put(self, local, remote_command: str, timeout: float = 300.0) -> None:
        self.uploads.append((Path(local).name, remote_command))

    def close(self) -> None:
        pass
