"""`--target lava+https://HOST`: a LAVA server (filled in below)."""

from __future__ import annotations

from typing import Any, Mapping

from orchestrator.base.errors import InfraError


def check_options(server: str, own: Mapping[str, Any]) -> None:
    """Bad input for a server: one line, before anything runs."""


def run(target, job, req):
    """Submit `job`, wait, read its results back."""
    raise InfraError("not yet", stage="boot")
