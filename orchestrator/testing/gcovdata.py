"""A coverage kernel's gcov data on the machine (Documentation/dev-tools/gcov.rst): reset
before each test binary, taken back after it, over the same SSH session as the tests.

The counters are in debugfs, one `.gcda` per profiled object under
/sys/kernel/debug/gcov/<the build dir's path>/. debugfs files have no size, so `cp` and
`tar` cannot read them (gcov.rst, "Troubleshooting"): each is read with `cat` into a
temporary directory, which goes back as one tar stream. Works wherever there is a shell,
`mount`, `find` and `tar` (busybox in orch's initramfs, a board's own userland).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

from orchestrator.base.errors import InfraError
from orchestrator.targets.ssh import Session

GCOV = "/sys/kernel/debug/gcov"

PREPARE = (f"[ -d {GCOV} ] || mount -t debugfs debugfs /sys/kernel/debug >/dev/null 2>&1; "
           f"[ -d {GCOV} ] && echo gcov-ok")
RESET = f"echo 1 > {GCOV}/reset"
COLLECT = ("set -e; d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT; cd " + GCOV + "; "
           "find . -name '*.gcda' | while read -r f; do "
           'mkdir -p "$d/${f%/*}"; cat "$f" > "$d/$f"; done; '
           'tar -C "$d" -cf - .')

NO_GCOV = ("the running kernel has no gcov data in debugfs ({where}): not a coverage build "
           "(CONFIG_GCOV_KERNEL), or debugfs cannot be mounted")


def prepare(sess: Session) -> str:
    """Mount debugfs where it is not; "" when the kernel's gcov data is there, else why
    not (one line)."""
    res = sess.run(PREPARE, timeout=30)
    if res.exit_code == 0 and "gcov-ok" in res.stdout:
        return ""
    return NO_GCOV.format(where=GCOV)


def reset(sess: Session) -> bool:
    """Zero every counter (the next binary's data is its own). False: it did not work."""
    return sess.run(RESET, timeout=30).exit_code == 0


def collect(sess: Session, dest: Path) -> Path:
    """The counters as they are now, as a tar file at `dest` (written whole or not at
    all). SSHError when they cannot be read."""
    data = sess.get(COLLECT, timeout=120)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return dest


def members(tar_path: Path, wanted: list[str]) -> dict[str, bytes]:
    """The gcda of each `wanted` source file (`mm/userfaultfd.c`) in a collected tar, by
    that file's path. A member is matched by its path's end (`.../mm/userfaultfd.gcda`),
    after gcc's mangling of `-fprofile-dir` names (`orch-gcov/mm#userfaultfd.gcda`,
    kernel/coverage.py); whatever is in front of it (a build dir) does not matter."""
    ends = {f: "/" + str(PurePosixPath(f).with_suffix(".gcda")) for f in wanted}
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(tar_path) as tf:
            for m in tf.getmembers():
                if not m.isfile():
                    continue
                name = "/" + m.name.lstrip("./").replace("#", "/")
                best = max((f for f, e in ends.items() if name.endswith(e)),
                           key=lambda f: len(ends[f]), default=None)
                if best is not None:
                    fobj = tf.extractfile(m)
                    out[best] = fobj.read() if fobj else b""
    except (OSError, tarfile.TarError) as exc:
        raise InfraError(f"{tar_path.name}: not a readable tar of gcov data "
                         f"({' '.join(str(exc).split())})", stage="coverage") from None
    return out


def tar_of(files: dict[str, bytes]) -> bytes:
    """A tar like COLLECT's (for tests): path -> content."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()
