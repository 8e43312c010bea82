"""Files that ship with orch: config fragments, selftests, the project's patch series."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CONFIGS = PROJECT / "configs"
SELFTESTS = PROJECT / "selftests"
PATCHES = PROJECT / "patches"
