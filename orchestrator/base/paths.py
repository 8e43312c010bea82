"""Files that ship with orch: config fragments, selftests, the project's patch series."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
CONFIGS = PROJECT / "configs"
SELFTESTS = PROJECT / "selftests"
PATCHES = PROJECT / "patches"
FUZZ = PROJECT / "fuzz"  # the in-guest executor of `orch fuzz` (C)
