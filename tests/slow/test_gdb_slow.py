"""`orch boot --gdb` on the default kernels (the ones the rest of the slow tier builds):
gdb-multiarch, run as orch prints it, attaches to the guest and reads guest memory.

What proves it read the guest, not vmlinux's file: `saved_command_line` is a pointer that
is NULL in the file and set at boot to a copy of the kernel command line, which carries a
token only this test passes (`--append orch.gdbproof=TOKEN`)."""

import re
import shlex
import signal
import subprocess
import threading
import time
import uuid

import pytest

from tests.support.host import qemu_alive
from tests.support.orch import orch_popen

pytestmark = pytest.mark.slow

GDB_LINE = re.compile(r"^\[(\w+)\] gdb: (gdb-multiarch .*)$")


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_gdb_attaches_and_reads_guest_memory(arch, tmp_path):
    token = uuid.uuid4().hex[:12]
    p = orch_popen("boot", "--arch", arch, "--gdb", "--append", f"orch.gdbproof={token}",
                   "-o", str(tmp_path / "o"), "-c", "sleep 900", stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    up = threading.Event()

    def read() -> None:
        for line in p.stderr:
            lines.append(line.rstrip("\n"))
            if "] booted " in line:
                up.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 1800  # a cold cache builds the kernel first
        while not up.wait(1):
            assert p.poll() is None, "\n".join(lines[-30:])
            assert time.monotonic() < deadline, "\n".join(lines[-30:])
        gdb = [GDB_LINE.match(ln) for ln in lines]
        found = [m for m in gdb if m]
        assert found and found[0].group(1) == arch, "\n".join(lines)
        argv = shlex.split(found[0].group(2))
        target = argv[-1]
        assert re.fullmatch(r"target remote 127\.0\.0\.1:\d+", target), argv
        assert argv[1].endswith(("/vmlinux", "/vmlinux-syms")), argv
        res = subprocess.run([*argv[:-2], "-batch", "-nx", "-ex", target,
                              "-ex", "x/s *(char **)&saved_command_line",
                              "-ex", "x/s (char *)&linux_banner", "-ex", "detach"],
                             capture_output=True, text=True, timeout=120)
        out = res.stdout + res.stderr
        print(found[0].group(0), out, sep="\n")  # the proof, under pytest -s
        assert f"orch.gdbproof={token}" in out, out
        assert "nokaslr" in out, out  # --gdb turns KASLR off: the symbols hold
        assert "orch@orch-" in out, out
        assert p.poll() is None, "the guest survives gdb's detach"
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    assert not qemu_alive(token)
