from pathlib import Path

import pytest

from orchestrator.base.errors import UsageError
from orchestrator.kernel import arch, kconfig


def test_parse_fragment_and_bad_line(tmp_path):
    f = tmp_path / "a.config"
    f.write_text("# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S=\"x y\"\n\n")
    reqs = kconfig.parse_fragment(f)
    assert [(r.option, r.value) for r in reqs] == [("CONFIG_A", "y"), ("CONFIG_B", "n"),
                                                   ("CONFIG_S", '"x y"')]
    assert reqs[1].where == f"{f}:3"
    f.write_text("CONFIG_A=y\nUSERFAULTFD=y\n")
    with pytest.raises(UsageError, match=r"a.config:2: not a config line"):
        kconfig.parse_fragment(f)


def test_later_fragment_wins_and_merge_into_config(tmp_path):
    a = tmp_path / "a.config"
    b = tmp_path / "b.config"
    a.write_text("CONFIG_X=y\nCONFIG_Y=y\n")
    b.write_text("# CONFIG_X is not set\n")
    reqs = kconfig.merge_requests([a, b])
    assert reqs["CONFIG_X"].value == "n" and reqs["CONFIG_X"].where == f"{b}:1"
    cfg = tmp_path / ".config"
    cfg.write_text("CONFIG_X=y\n# CONFIG_Y is not set\nCONFIG_Z=y\n")
    kconfig.apply_requests(cfg, reqs)
    assert kconfig.read_config(cfg) == {"CONFIG_Z": "y", "CONFIG_X": "n", "CONFIG_Y": "y"}


def test_dropped_option_names_option_and_unmet_dependency(tmp_path):
    src = tmp_path / "src"
    (src / "mm").mkdir(parents=True)
    (src / "mm/Kconfig").write_text(
        "config MEMORY_FAILURE\n\tdepends on MMU\n\tdepends on ARCH_SUPPORTS_MEMORY_FAILURE\n"
        "\tbool \"Enable recovery from hardware memory errors\"\n\nconfig OTHER\n\tbool\n")
    frag = tmp_path / "selftests.config"
    frag.write_text("CONFIG_USERFAULTFD=y\nCONFIG_MEMORY_FAILURE=y\n")
    reqs = kconfig.merge_requests([frag])
    final = {"CONFIG_USERFAULTFD": "y", "CONFIG_MMU": "y"}
    bad = kconfig.dropped(final, reqs)
    assert [r.option for r, _ in bad] == ["CONFIG_MEMORY_FAILURE"]
    msg = kconfig.explain(src, final, *bad[0])
    assert msg.startswith(f"{frag}:2: CONFIG_MEMORY_FAILURE=y was dropped (final .config: "
                          "not set)")
    assert "MMU [=y]" in msg and "ARCH_SUPPORTS_MEMORY_FAILURE [=n]" in msg


def test_fragments_for_arch_and_user_fragment(tmp_path):
    extra = tmp_path / "mine.config"
    extra.write_text("CONFIG_KASAN=y\n")
    paths = kconfig.fragments_for(arch.ARM64, [str(extra)], [])
    assert [p.name for p in paths] == ["base.config", "arm64.config", "selftests.config",
                                       "mine.config"]
    with pytest.raises(UsageError, match="--config nope.config: no such fragment"):
        kconfig.fragments_for(arch.ARM64, ["nope.config"], [])


def test_shipped_fragments_parse():
    for f in sorted(Path(kconfig.CONFIGS).glob("*.config")):
        assert kconfig.parse_fragment(f), f


def test_make_argv_cross_and_ccache():
    argv = kconfig.make_argv(arch.ARM64, Path("/src"), Path("/b"), ["Image"], jobs=2,
                             cc="ccache aarch64-linux-gnu-gcc")
    assert argv[:5] == ["make", "-C", "/src", "O=/b", "ARCH=arm64"]
    assert "CROSS_COMPILE=aarch64-linux-gnu-" in argv
    assert "CC=ccache aarch64-linux-gnu-gcc" in argv
    assert argv[-2:] == ["-j2", "Image"]


def test_make_argv_native_has_no_cross_prefix():
    if arch.host_arch() != "x86_64":
        pytest.skip("native x86_64 host only")
    argv = kconfig.make_argv(arch.X86_64, Path("/src"), Path("/b"), ["bzImage"])
    assert not any(a.startswith("CROSS_COMPILE") for a in argv)
