"""What an edit that touches no Kconfig input must not redo: the config stage (its stamp
depends on the tree's kconfig inputs, fragments, arch and compiler, not on the source tree
object) and the selftest binaries (keyed by the uAPI headers' content, not by the kernel)."""

import json
from pathlib import Path
from types import SimpleNamespace

from orchestrator.base.runner import Runner
from orchestrator.kernel import arch, build, kconfig
from orchestrator.run import sources, stages
from tests.support.host import git


def _tree(tmp_path: Path) -> Path:
    wt = tmp_path / "linux"
    (wt / "mm").mkdir(parents=True)
    (wt / "Kconfig").write_text("source \"mm/Kconfig\"\n")
    (wt / "mm" / "Kconfig").write_text("config USERFAULTFD\n\tbool \"uffd\"\n")
    (wt / "mm" / "userfaultfd.c").write_text("int x = 1;\n")
    (wt / "Makefile").write_text("VERSION = 6\n")
    git(wt.parent, "init", "-q", str(wt))
    _commit(wt, "base")
    return wt


def _commit(wt: Path, msg: str) -> None:
    git(wt, "add", "-A")
    git(wt, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", msg)


def _stamp(wt: Path, tmp_path: Path, monkeypatch, fragments: list[Path]) -> str:
    """The stamp the config stage gives kconfig.configure for the tree as it is now."""
    seen = {}

    def configure(a, srctree, builddir, frags, r, log, stamp=""):
        seen["stamp"] = stamp
        (builddir).mkdir(parents=True, exist_ok=True)
        (builddir / ".config").write_text("CONFIG_USERFAULTFD=y\n")

    monkeypatch.setattr(kconfig, "configure", configure)
    monkeypatch.setattr(build, "compiler_version", lambda a, r: "gcc (Debian 12.2.0) 12.2.0")
    head, tree = git(wt, "rev-parse", "HEAD", "HEAD^{tree}").split()
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    run = SimpleNamespace(runner=Runner(), versions={"gcc": {}}, source_tree=tree,
                          worktree=wt, fragments={"x86_64": fragments},
                          opts=SimpleNamespace(profiles=[]),
                          log=lambda a, name: out / name)
    stages.config(run, SimpleNamespace(arch=arch.X86_64, config_text=""))
    return seen["stamp"]


def test_config_is_not_redone_after_a_c_edit(tmp_path, monkeypatch):
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_USERFAULTFD=y\n")
    wt = _tree(tmp_path)
    first = _stamp(wt, tmp_path, monkeypatch, [frag])
    (wt / "mm" / "userfaultfd.c").write_text("int x = 2;\n")
    _commit(wt, "edit a .c file")  # a new source tree object
    assert _stamp(wt, tmp_path, monkeypatch, [frag]) == first
    (wt / "mm" / "userfaultfd.c").write_text("int x = 3;\n")  # not committed
    assert _stamp(wt, tmp_path, monkeypatch, [frag]) == first


def test_config_is_redone_when_a_kconfig_input_changes(tmp_path, monkeypatch):
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_USERFAULTFD=y\n")
    wt = _tree(tmp_path)
    first = _stamp(wt, tmp_path, monkeypatch, [frag])
    (wt / "mm" / "Kconfig").write_text("config USERFAULTFD\n\tbool \"uffd\"\n\tdefault y\n")
    dirty = _stamp(wt, tmp_path, monkeypatch, [frag])  # an edit on disk counts
    assert dirty != first
    _commit(wt, "Kconfig edit")
    assert _stamp(wt, tmp_path, monkeypatch, [frag]) == dirty
    (wt / "Makefile").write_text("VERSION = 7\n")
    assert _stamp(wt, tmp_path, monkeypatch, [frag]) != dirty
    frag.write_text("CONFIG_USERFAULTFD=y\nCONFIG_KSM=y\n")
    assert _stamp(wt, tmp_path, monkeypatch, [frag]) not in (first, dirty)


def _kernel(key: str, header: str) -> build.Kernel:
    k = build.store_for(arch.X86_64, key)
    (k.headers / "include" / "linux").mkdir(parents=True)
    (k.headers / "include" / "linux" / "orch_test.h").write_text(header)
    (k.store / "kernel.json").write_text(json.dumps({"key": key}))
    (k.store / "complete").write_text("")
    return k


def _selftests(tmp_path: Path, k: build.Kernel) -> list[str]:
    """Run the selftests stage for kernel `k`; returns the compile commands it ran."""
    src = tmp_path / "st"
    src.mkdir(exist_ok=True)
    (src / "hello.c").write_text("#include <linux/orch_test.h>\nint main(void) "
                                 "{ return ORCH_X - ORCH_X; }\n")
    r = Runner()
    run = SimpleNamespace(runner=r, opts=SimpleNamespace(selftests=src, tests=None,
                                                        test_timeout=60.0),
                          log=lambda a, name: tmp_path / name,
                          progress=SimpleNamespace(status=lambda m: None))
    st = SimpleNamespace(arch=arch.X86_64, kernel=k, tests=[], programs=[])
    sources.own_build(run, st)
    assert all(t.is_file() for t in st.tests)
    return [c for c in r.commands if "hello.c" in c]


def test_selftests_are_reused_by_a_kernel_with_the_same_uapi(tmp_path, isolated_cache):
    assert _selftests(tmp_path, _kernel("a" * 20, "#define ORCH_X 1\n"))
    # Another kernel (an edit to mm/userfaultfd.c: a new key), the same uAPI headers.
    assert _selftests(tmp_path, _kernel("b" * 20, "#define ORCH_X 1\n")) == []
    assert build.store_for(arch.X86_64, "b" * 20).info()["headers_digest"]
    # A uAPI change is compiled against.
    assert _selftests(tmp_path, _kernel("c" * 20, "#define ORCH_X 2\n"))
