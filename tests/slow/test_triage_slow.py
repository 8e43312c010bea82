"""Crash triage on real kernels, both arches: a test patch on top of patches/uffd-move warns
and dereferences NULL on the move path; a selftest triggers it with one UFFDIO_MOVE. The
run's results.json holds both reports as records (kind, title, frames with file:line, the
patch that wrote each line), and the JUnit failure message leads with the first one.

The patched kernel is an incremental build on the default kernel's build dir (only
mm/userfaultfd.c changes), and a store hit on a second run.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from tests.support.orch import orch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
CRASH_PATCH = DATA / "0009-mm-userfaultfd-orch-crash-test.patch"
PATCH = CRASH_PATCH.name.removesuffix(".patch")
IOCTL_PATCH = "0004-userfaultfd-add-UFFDIO_MOVE-ioctl"

SELFTEST = r"""
/* One UFFDIO_MOVE of 13 pages onto themselves: the crash test patch's trigger. */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned long len = 13 * page;
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MOVE };
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	char *area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	printf("KTAP version 1\n1..1\n");
	fflush(stdout);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || area == MAP_FAILED) {
		printf("not ok 1 move_onto_itself # setup failed\n");
		return 1;
	}
	struct uffdio_move mv = { .dst = (unsigned long)area, .src = (unsigned long)area };

	mv.len = len;
	ioctl(uffd, UFFDIO_MOVE, &mv);
	printf("ok 1 move_onto_itself\n");
	return 0;
}
"""


def patch_lines(patch: Path) -> dict[str, int]:
    """The new-file line numbers of the patch's added lines, by a word they contain."""
    out, line = {}, 0
    for text in patch.read_text().splitlines():
        m = re.match(r"^@@ -\d+(?:,\d+)? \+(\d+)", text)
        if m:
            line = int(m.group(1))
            continue
        if line and text.startswith(("+", " ")) and not text.startswith("+++"):
            for word in ("WARN(", "READ_ONCE("):
                if word in text:
                    out[word] = line
            line += 1
    return out


@pytest.fixture(scope="module")
def crash_series(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("series") / "uffd-move-crash"
    d.mkdir()
    for p in sorted((ROOT / "patches/uffd-move").glob("*.patch")):
        shutil.copy(p, d)
    shutil.copy(CRASH_PATCH, d)
    return d


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_crash_is_traced_to_file_line_and_patch(arch, crash_series, tmp_path):
    st = tmp_path / "st"
    st.mkdir()
    (st / "move_crash.c").write_text(SELFTEST)
    out = tmp_path / "o"
    r = orch("run", "--arch", arch, "--series", str(crash_series), "--selftests", str(st),
             "-o", str(out), timeout=3600)
    assert r.returncode == 1, r.stderr[-3000:]
    lines = patch_lines(CRASH_PATCH)
    data = json.loads((out / "results.json").read_text())
    (case,) = [t for t in data["tests"] if t["name"] == "dmesg_clean"]
    assert case["status"] == "fail"
    warn, oops = case["reports"][:2]
    # The WARNING: its own file:line, written by the test patch.
    assert (warn["kind"], warn["title"]) == ("warning", "WARNING in uffd_move_pages")
    assert (warn["file"], warn["line"], warn["patch"]) == (
        "mm/userfaultfd.c", lines["WARN("], PATCH)
    # Its crash site (the WARN's trap), decoded: in the test patch.
    assert (warn["frames"][0]["file"], warn["frames"][0]["patch"]) == (
        "mm/userfaultfd.c", PATCH), warn["frames"][0]
    # The NULL dereference: the crash site decoded from DWARF to the test patch's line ...
    assert oops["kind"] == "oops" and oops["title"].endswith(
        "NULL pointer dereference in uffd_move_pages"), oops["title"]
    site = oops["frames"][0]
    assert site["function"] == "uffd_move_pages"
    assert (site["file"], site["line"], site["patch"]) == (
        "mm/userfaultfd.c", lines["READ_ONCE("], PATCH)
    # ... and its caller, the ioctl, to the series patch that added it.
    # (x86_64's tinyconfig unwinder only guesses: its frames are `? f+...`, kept as such.)
    callers = [f for f in oops["frames"] if f["function"] in ("userfaultfd_move",
                                                                "userfaultfd_ioctl")]
    assert callers, oops["frames"]
    assert callers[0]["file"] == "fs/userfaultfd.c", callers
    assert callers[0]["patch"] == IOCTL_PATCH, callers
    # The JUnit failure message leads with the first report's summary.
    suites = [s for s in JUnitXml.fromfile(str(out / "junit.xml"))
              if s.name.endswith(".move_crash")]
    (failure,) = [res for c in suites[0] if c.name == "dmesg_clean" for res in c.result
                  if isinstance(res, Failure)]
    want = f"WARNING in uffd_move_pages (mm/userfaultfd.c:{lines['WARN(']}, patch {PATCH})"
    assert failure.message.startswith(want), failure.message
    print(f"\n{arch} JUnit failure message: {failure.message}")
    print(next((ln for ln in r.stderr.splitlines() if "(triage " in ln), ""))
