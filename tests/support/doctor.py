"""Reading `orch doctor`'s acceleration section: one verdict per arch.

Verdicts: "kvm" (a kernel booted under KVM), "no-kvm" (/dev/kvm is there but KVM did not
boot a kernel: TCG will be used), "tcg" (KVM cannot even be tried: a foreign arch, or
/dev/kvm missing or closed), "unprobed" (/dev/kvm is there, no kernel to probe with yet).
"""

from __future__ import annotations

import re

_VERDICTS = [
    ("kvm", re.compile(r"KVM works \((?P<why>.*)\)$")),
    ("no-kvm", re.compile(r"KVM does NOT work, TCG will be used \((?P<why>.*)\)$")),
    ("tcg", re.compile(r"TCG \((?P<why>.*)\)$")),
    ("unprobed", re.compile(r"/dev/kvm present; not probed yet(?P<why>.*)$")),
]


def acceleration(stdout: str) -> dict[str, tuple[str, str]]:
    """{arch: (verdict, reason)} from the "acceleration:" section; an arch line that says
    none of the verdicts is an AssertionError quoting it."""
    lines = stdout.splitlines()
    assert "acceleration:" in lines, stdout
    found: dict[str, tuple[str, str]] = {}
    for ln in lines[lines.index("acceleration:") + 1:]:
        if not ln.startswith("  "):
            break
        arch, _, rest = ln.strip().partition(": ")
        for verdict, rx in _VERDICTS:
            m = rx.match(rest)
            if m:
                found[arch] = (verdict, m.group("why").strip())
                break
        else:
            raise AssertionError(f"no KVM verdict in {ln!r}")
    return found


def agrees_with_run(verdict: str, accelerator: str) -> bool:
    """Whether doctor's verdict is the one an `orch run` with --accel auto acted on: it
    used KVM exactly when doctor says KVM works."""
    return (verdict == "kvm") == (accelerator == "kvm") and verdict != "unprobed"
