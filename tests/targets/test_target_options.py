"""A target's own option is declared once (an `Opt` in its class's OPTIONS): the option
table takes it in, the target reads it by dest, and make() refuses it for any other
target, with the same message for each."""

from pathlib import Path

import pytest

from orchestrator import options
from orchestrator.base.errors import EXIT_USAGE, UsageError
from orchestrator.base.opt import RUN
from orchestrator.kernel import arch
from orchestrator.targets import TARGET_OPTIONS, registry


def example(opt, tmp_path):
    """The option's example value, made real where the target checks it (a file)."""
    if opt.type is Path:
        p = tmp_path / Path(opt.example).name
        p.write_text("")
        return p
    return opt.example


def spec_for(target_class):
    return {registry.QemuTarget: "qemu", registry.SshTarget: "ssh://root@board:22",
            registry.LavaTarget: "lava+https://lab.example"}[target_class]


# What a target needs besides the option under test (a LAVA server: where its workers fetch)
NEEDS = {registry.LavaTarget: {"artifacts_url": "https://files.example/orch"}}


def test_every_target_is_covered_here():
    assert set(registry.TARGETS) == {registry.QemuTarget, registry.SshTarget, registry.LavaTarget}


def test_the_table_takes_in_every_targets_options_once():
    table = [o.dest for o in options.OPTIONS]
    assert TARGET_OPTIONS is registry.OPTIONS
    for o in TARGET_OPTIONS:
        assert table.count(o.dest) == 1, o.dest
    assert [o.flags[0] for o in TARGET_OPTIONS] == [
        "--gdb", "--known-hosts", "--no-deploy", "--reboot-cmd", "--target-initrd",
        "--reboot-after", "--device-type", "--artifacts-url", "--lava-identity"]


@pytest.mark.parametrize("opt", TARGET_OPTIONS, ids=lambda o: o.dest)
@pytest.mark.parametrize("target_class", registry.TARGETS, ids=lambda t: t.kind)
def test_an_option_is_accepted_by_exactly_its_owners(opt, target_class, tmp_path):
    value = example(opt, tmp_path)
    opts = options.make(target=spec_for(target_class),
                        **{**NEEDS.get(target_class, {}), opt.dest: value})
    if opt in target_class.OPTIONS:
        t = registry.make(opts)
        assert isinstance(t, target_class)
        assert getattr(t, opt.dest) == value  # read from the options by dest
    else:
        with pytest.raises(UsageError) as e:
            registry.make(opts)
        owner = registry.owners(opt.dest)[0].SHORT
        assert str(e.value) == f"{opt.flags[0]} is for --target {owner}"
        assert e.value.exit_code == EXIT_USAGE
    assert registry.owners(opt.dest) == [t for t in registry.TARGETS if opt in t.OPTIONS]


def test_unset_options_read_as_their_declared_defaults():
    t = registry.select("ssh://h")
    for o in registry.SshTarget.OPTIONS:
        assert getattr(t, o.dest) == o.parsed_default(RUN)
    with pytest.raises(AttributeError):
        t.no_such_option  # noqa: B018


def test_a_target_reads_its_settings_and_its_own_options_only():
    assert registry.QemuTarget.reads() == ["accel", "memory", "smp", "append", "boot_timeout",
                                       "ssh_timeout", "gdb"]
    assert registry.SshTarget.reads() == ["append", "boot_timeout", "ssh_timeout",
                                      *(o.dest for o in registry.SshTarget.OPTIONS)]
    # make() hands over what the targets read, from the run's options
    t = registry.make(options.make(target="ssh://h", boot_timeout=7.0, append="quiet",
                               reboot_cmd="go", accel="tcg"))
    assert (t.boot_timeout, t.append, t.deploy.name, t.reboot_cmd) == (7.0, "quiet",
                                                                        "reboot-cmd", "go")
    q = registry.make(options.make(memory="2G", smp=3, accel="tcg", append="x"))
    assert (q.memory, q.smp, q.accel, q.append) == ("2G", 3, "tcg", "x")


@pytest.mark.parametrize("kw,message", [
    ({"no_deploy": True}, "--no-deploy is for --target ssh://..."),
    ({"no_deploy": True, "reboot_cmd": "x"}, "--no-deploy and --reboot-cmd: choose one"),
    ({"target": "ssh://h", "no_deploy": True, "reboot_cmd": "x"},
     "--no-deploy and --reboot-cmd: choose one"),
    ({"target": "lava://x", "no_deploy": True},
     "--target lava://x: expected qemu or ssh://[user@]host[:port] or lava or "
     "lava+https://HOST"),
    ({"device_type": "qemu"}, "--device-type is for --target lava"),
    ({"target": "lava", "device_type": "beaglebone-black"},
     "--device-type beaglebone-black: the local dispatcher (lava-run) has a device "
     "dictionary for qemu only"),
    ({"target": "lava", "lava_identity": "lab"},
     "--lava-identity is for a LAVA server (--target lava+https://HOST), not the local "
     "dispatcher"),
    ({"target": "lava", "artifacts_url": "ftp://x"},
     "--artifacts-url ftp://x: expected an http(s) URL (https://HOST[/PATH])"),
    ({"target": "lava+ftp://lab"}, "--target lava+ftp://lab: expected lava+https://HOST (a "
     "LAVA server)"),
    ({"target": "lava+https://lab"}, "--target lava+https://lab: --artifacts-url BASE is "
     "needed (the lab's workers fetch the kernel and initramfs from there)"),
    ({"target": "lava+https://lab", "artifacts_url": "file:///srv"},
     "--artifacts-url file:///srv: expected an http(s) URL (https://HOST[/PATH])"),
    ({"target": "ssh://h", "arches": [arch.X86_64, arch.ARM64]},
     "--target ssh://h: one machine is one arch; give one --arch"),
    ({"target": "ssh://h", "known_hosts": Path("/nonexistent/kh")},
     "--known-hosts /nonexistent/kh: no such file"),
])
def test_make_messages(kw, message):
    with pytest.raises(UsageError) as e:
        registry.make(options.make(**kw))
    assert str(e.value) == message and e.value.exit_code == EXIT_USAGE
