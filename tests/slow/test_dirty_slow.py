"""The tree as it is on disk, on a real kernel: a user's checkout with uncommitted edits.

The checkout is a `git clone --shared` of orch's imported 6.1 tree, kept at a fixed place
in the cache (so orch's worktree and build dir for it are reused: the dirty kernel is an
incremental build; cold, its first build hits ccache for every object the default kernel
already compiled). The edit: a tracked file (fs/proc/version.c) includes an untracked
header that holds a marker and prints it in /proc/version; a selftest reads /proc/version.
Without the edit (--committed) the cell is the default one's source: a store hit.
"""

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from orchestrator.base.runner import Runner
from orchestrator.kernel import tree as treemod
from orchestrator.store import cache
from tests.support.host import git
from tests.support.orch import orch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SELFTEST = r"""
#include <stdio.h>
int main(void)
{
	char line[512];
	FILE *f = fopen("/proc/version", "r");

	printf("KTAP version 1\n1..1\n");
	while (f && fgets(line, sizeof(line), f))
		printf("# /proc/version: %s", line);
	printf("%s 1 proc_version\n", f ? "ok" : "not ok");
	return 0;
}
"""


@pytest.fixture(scope="module")
def checkout() -> Path:
    """A user's checkout of the imported 6.1 tree, clean, at the import commit."""
    imported = treemod.resolve("linux-6.1", Runner()).repo  # imported once per cache
    co = cache.subdir("test-checkouts") / "linux"
    if not (co / ".git").exists():
        subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(imported),
                        str(co)], check=True)
    git(co, "checkout", "-q", "-f", "orch-import")
    git(co, "clean", "-q", "-f", "-d", "-x")
    return co


def run(co: Path, st: Path, out: Path, *extra: str):
    start = time.monotonic()
    r = orch("run", "--tree", str(co), "--series", str(ROOT / "patches/uffd-move"),
             "--selftests", str(st), "-o", str(out), *extra, timeout=3600)
    return r, time.monotonic() - start


def test_uncommitted_edit_is_in_the_booted_kernel_and_committed_ignores_it(checkout,
                                                                           tmp_path):
    co = checkout
    # Debian's .gitignore ignores every top-level path (its packaging block): untracked
    # files would all be ignored. Dropping that block is a tracked edit of its own.
    gitignore = co / ".gitignore"
    gitignore.write_text(gitignore.read_text().replace("\n/*\n!/debian/\n", "\n"))
    marker = f"orch-dirty-{uuid.uuid4().hex[:8]}"
    (co / "fs/proc/orch_dirty.h").write_text(f'#define ORCH_DIRTY "{marker}\\n"\n')
    version = co / "fs/proc/version.c"
    text = version.read_text()
    assert "utsname()->version);\n" in text
    version.write_text('#include "orch_dirty.h"\n' + text.replace(
        "utsname()->version);\n", "utsname()->version);\n\tseq_puts(m, ORCH_DIRTY);\n", 1))
    status = git(co, "status", "--porcelain")
    st = tmp_path / "st"
    st.mkdir()
    (st / "proc_version.c").write_text(SELFTEST)

    out = tmp_path / "dirty"
    r, secs = run(co, st, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "testing the uncommitted changes in" in r.stderr
    assert marker in (out / "x86_64/tests/proc_version.ktap").read_text()
    cell = json.loads((out / "results.json").read_text())["cells"][0]
    assert cell["id"] == "x86_64.linux.uffd-move+dirty.default.qemu"
    assert cell["dirty_hash"] and cell["series_patches"] == 8
    diff = (out / "dirty.diff").read_text()
    assert "fs/proc/orch_dirty.h" in diff and marker in diff and ".gitignore" in diff
    assert git(co, "status", "--porcelain") == status  # the checkout is untouched
    print(f"\ndirty run: {secs:.0f}s")

    out2 = tmp_path / "committed"
    r, secs = run(co, st, out2, "--committed")
    assert r.returncode == 0, r.stderr[-3000:]
    assert marker not in (out2 / "x86_64/tests/proc_version.ktap").read_text()
    cell = json.loads((out2 / "results.json").read_text())["cells"][0]
    assert cell["id"] == "x86_64.linux.uffd-move.default.qemu" and not cell["dirty_hash"]
    assert git(co, "status", "--porcelain") == status
    print(f"committed run: {secs:.0f}s")
