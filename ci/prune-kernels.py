#!/usr/bin/env python3
"""Keep in orch's kernel store only the kernels that the given runs used.

    ci/prune-kernels.py STORE_DIR METADATA_JSON...

A CI cache holding the kernel store would otherwise grow by one kernel every time a series
changes. When a run did not get as far as a kernel (no key in its metadata.json), nothing
is removed: the next run may still need what is there. Standard library only.
"""

import json
import shutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    store = Path(argv[0])
    if not store.is_dir():
        return 0
    keep: set[str] = set()
    for m in argv[1:]:
        try:
            meta = json.loads(Path(m).read_text())
        except (OSError, ValueError) as exc:
            print(f"prune-kernels: {m}: {exc}; keeping the store as it is", file=sys.stderr)
            return 0
        for name, a in (meta.get("arches") or {}).items():
            key = (a.get("kernel") or {}).get("key")
            if not key:
                print(f"prune-kernels: {m}: no {name} kernel; keeping the store as it is")
                return 0
            keep.add(f"{name}-{key}")
    for d in sorted(store.iterdir()):
        if d.is_dir() and d.name not in keep:
            print(f"prune-kernels: removing {d.name}")
            shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
