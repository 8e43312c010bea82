"""How long a kernel build will take: figures of the kernels already in the store."""

from __future__ import annotations

import json

from orchestrator.kernel.arch import Arch
from orchestrator.store import cache


def estimate(arch: Arch, cold: bool) -> tuple[int | None, float | None]:
    """(make's steps, seconds) of the latest kernel of `arch` built the same way (`cold`:
    in a fresh build dir, as in CI; else incremental), from the store's kernel.json files,
    which travel with the CI cache. An incremental build's step count depends on the edit:
    only its time is an estimate."""
    best: tuple[float, dict] | None = None
    for info_file in cache.subdir("kernels").glob(f"{arch.name}-*/kernel.json"):
        try:
            info, when = json.loads(info_file.read_text()), info_file.stat().st_mtime
        except (OSError, ValueError):
            continue
        if info.get("cold") == cold and info.get("steps") and (best is None or when > best[0]):
            best = (when, info)
    if best is None:
        return None, None
    return (best[1]["steps"] if cold else None), best[1].get("compile_seconds")
