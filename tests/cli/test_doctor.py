"""`orch doctor`'s KVM verdict, read by tests.support.doctor (the slow tier checks it after
a real run): on synthetic outputs, then on this host's doctor with an empty cache."""

import pytest

from orchestrator.targets import qemu
from tests.support.doctor import acceleration, agrees_with_run


def doctor_out(*lines: str) -> str:
    return "\n".join(["host tools:", "  ok      git", "per arch:", "  ok      x86_64: gcc",
                      "acceleration:", *(f"  {ln}" for ln in lines),
                      "cache: /c (0 B)", "  kernels 0 B"]) + "\n"


KVM = "x86_64: KVM works (booted to the banner in 0.8s under KVM)"
NO_KVM = "x86_64: KVM does NOT work, TCG will be used (QEMU aborted: kvm_init_vcpu failed)"
NO_DEV = "x86_64: TCG (/dev/kvm does not exist)"
UNPROBED = ("x86_64: /dev/kvm present; not probed yet (needs a built kernel: run "
            "`orch run` once)")
ARM = "arm64: TCG (foreign arch)"


@pytest.mark.parametrize("line, verdict", [(KVM, "kvm"), (NO_KVM, "no-kvm"),
                                           (NO_DEV, "tcg"), (UNPROBED, "unprobed")])
def test_each_verdict_is_read(line, verdict):
    accel = acceleration(doctor_out(line, ARM))
    assert accel["x86_64"][0] == verdict
    assert accel["arm64"] == ("tcg", "foreign arch")


@pytest.mark.parametrize("line, accelerator, ok", [
    (KVM, "kvm", True), (KVM, "tcg", False),  # doctor says KVM works, the run used TCG
    (NO_KVM, "tcg", True), (NO_KVM, "kvm", False),
    (NO_DEV, "tcg", True),
    (UNPROBED, "tcg", False), (UNPROBED, "kvm", False),  # no verdict at all
])
def test_verdict_agrees_with_the_run(line, accelerator, ok):
    out = doctor_out(line, ARM)
    # (The check this replaced, `"KVM works" in out or "TCG" in out`, passed on every one
    # of these outputs: arm64's line says "TCG".)
    assert agrees_with_run(acceleration(out)["x86_64"][0], accelerator) is ok


def test_a_line_without_a_verdict_is_an_error():
    with pytest.raises(AssertionError, match="no KVM verdict"):
        acceleration(doctor_out("x86_64: something else", ARM))


def test_this_hosts_doctor_with_an_empty_cache(orch):
    r = orch("doctor", "--arch", "x86_64,arm64")
    accel = acceleration(r.stdout)
    # no kernel in a fresh cache: KVM cannot have been probed
    want = "unprobed" if qemu.kvm_device().usable else "tcg"
    assert accel["x86_64"][0] == want, r.stdout
    assert accel["arm64"][0] == "tcg", r.stdout
