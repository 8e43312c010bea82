from orchestrator.kernel import arch, build


def test_stamp_is_the_store_key_in_the_build_host():
    key = build.build_key(arch.X86_64, "tree", "CONFIG_X=y\n", "gcc 12")
    assert build.stamp(key) == f"orch-{key}"
    assert build.store_for(arch.X86_64, key).stamp == f"orch-{key}"
    assert "KBUILD_BUILD_HOST" not in build.REPRO_ENV  # set per kernel, from the key


def test_build_key_depends_on_every_input():
    base = ("tree", "CONFIG_X=y\n", "gcc 12")
    k = build.build_key(arch.X86_64, *base)
    assert k != build.build_key(arch.ARM64, *base)
    assert k != build.build_key(arch.X86_64, "tree2", *base[1:])
    assert k != build.build_key(arch.X86_64, base[0], "CONFIG_Y=y\n", base[2])
    assert k != build.build_key(arch.X86_64, *base[:2], "gcc 13")
