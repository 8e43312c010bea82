"""The kernel store's integrity check: a digest recorded when stored, checked on use."""

import json

from orchestrator.kernel import arch, build
from orchestrator.store import cache


def _bzimage(size_paras: int = 64, setup: int = 1) -> bytes:
    data = bytearray((setup + 1) * 512 + size_paras * 16)
    data[0x1f1] = setup
    data[0x1f4:0x1f8] = size_paras.to_bytes(4, "little")
    data[0x202:0x206] = b"HdrS"
    return bytes(data)


def _store(isolated_cache, image: bytes, digest: bool = True) -> build.Kernel:
    k = build.store_for(arch.X86_64, "k" * 20)
    k.store.mkdir(parents=True)
    k.image.write_bytes(image)
    k.config.write_text("CONFIG_X=y\n")
    (k.headers / "include").mkdir(parents=True)
    info = {"key": k.key}
    if digest:
        info["image_sha256"] = cache.file_digest(k.image)
    (k.store / "kernel.json").write_text(json.dumps(info))
    (k.store / "complete").write_text("")
    return k


def test_intact_entry_passes(isolated_cache):
    assert build.store_problem(_store(isolated_cache, _bzimage())) is None


def test_truncated_image_is_damaged(isolated_cache):
    """A truncated image is caught by its own header (the size it announces), whether or not
    a digest was recorded: the check must be reachable, not shadowed by the sha256 one."""
    whole = _bzimage()  # setup 1 sector + 64 paragraphs: (1 + 1) * 512 + 64 * 16 = 2048
    assert len(whole) == 2048
    cut = whole[:-100]
    k = _store(isolated_cache, cut, digest=False)  # an entry from before digests
    assert build.store_problem(k) == "bzImage is truncated (1948 bytes, its header says 2048)"
    assert build.format_problem(arch.X86_64, k.image) == build.store_problem(k)
    assert "image_sha256" not in k.info()  # a damaged image's digest is not recorded


def test_truncated_image_with_a_digest_is_damaged(isolated_cache):
    k = _store(isolated_cache, _bzimage())
    k.image.write_bytes(_bzimage()[:-100])
    why = build.store_problem(k)
    assert why.startswith("bzImage (1948 bytes) has sha256 ")
    assert why.endswith("recorded when it was stored")


def test_flipped_byte_and_missing_parts(isolated_cache):
    k = _store(isolated_cache, _bzimage())
    data = bytearray(k.image.read_bytes())
    data[700] ^= 1
    k.image.write_bytes(bytes(data))
    assert "sha256" in build.store_problem(k)
    k.image.unlink()
    assert build.store_problem(k) == "bzImage is missing"


def test_entry_stored_before_digests_is_checked_by_format_then_recorded(isolated_cache):
    k = _store(isolated_cache, _bzimage()[:-16], digest=False)
    assert "truncated" in build.store_problem(k)
    k.image.write_bytes(_bzimage())
    assert build.store_problem(k) is None
    assert k.info()["image_sha256"] == cache.file_digest(k.image)


def test_arm64_format_check(tmp_path):
    img = tmp_path / "Image"
    img.write_bytes(bytes(0x40))
    assert "no arm64 Image header" in build.format_problem(arch.ARM64, img)
    data = bytearray(0x40)
    data[0x38:0x3c] = b"ARM\x64"
    img.write_bytes(bytes(data))
    assert build.format_problem(arch.ARM64, img) is None


def test_ccache_depend_mode_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("CCACHE_DEPEND", raising=False)
    monkeypatch.delenv("CCACHE_NODEPEND", raising=False)
    assert build.ccache_mode() == {"CCACHE_DEPEND": "1"}
    monkeypatch.setenv("CCACHE_NODEPEND", "1")
    assert build.ccache_mode() == {}
