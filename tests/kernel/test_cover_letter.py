"""The shipped series' cover letter says what the tree holds: its diffstat is the patches'
own, every testcase it names in brackets is a case of orch's selftests, and its uffd_move
counts are the case table's (issue #24: "the cover letter's counts match the tree")."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERIES = ROOT / "patches" / "uffd-move"
COVER = SERIES / "0000-cover-letter.patch"
# words in brackets that are prose, not testcase names
NOT_CASES = {"mmap_changing", "x86_64"}


def patch_files() -> list[Path]:
    names = (SERIES / "series").read_text().split()
    return [SERIES / n for n in names if not n.startswith("#")]


def numstat(patch: Path) -> dict[str, list[int]]:
    """file -> [added, removed] lines of one patch (git apply --numstat: nothing applied)."""
    out = subprocess.run(["git", "apply", "--numstat", str(patch)], capture_output=True,
                         text=True, check=True).stdout
    return {path: [int(a), int(r)] for a, r, path in (ln.split("\t") for ln in out.splitlines())}


def cover_diffstat() -> tuple[dict[str, int], tuple[int, int]]:
    text = COVER.read_text()
    per = {m[1].strip(): int(m[2])
           for m in re.finditer(r"^ (\S+)\s*\|\s*(\d+) [+-]+$", text, re.M)}
    total = re.search(r"(\d+) insertions?\(\+\), (\d+) deletions?\(-\)", text)
    return per, (int(total[1]), int(total[2]))


def cases() -> set[str]:
    src = (ROOT / "selftests" / "uffd_move.c").read_text()
    return set(re.findall(r'^\t\{ "([a-z0-9_]+)"', src, re.M))


def test_cover_letter_diffstat_is_the_series():
    """The cover letter's diffstat is base..tip; each patch's numstat is its own step. Lines
    a later patch changes again count in two steps, so per file the diffstat's count lies
    between the net change and the sum of the steps, and the totals' net change is exact."""
    steps: dict[str, list[int]] = {}
    for p in patch_files():
        for path, (a, r) in numstat(p).items():
            steps.setdefault(path, [0, 0])
            steps[path][0] += a
            steps[path][1] += r
    per, (plus, minus) = cover_diffstat()
    assert set(per) == set(steps)
    for path, (a, r) in steps.items():
        assert abs(a - r) <= per[path] <= a + r, path
    assert plus - minus == sum(a - r for a, r in steps.values())
    assert plus + minus == sum(per.values())


def test_every_bracketed_testcase_in_the_cover_letter_exists():
    known = cases()
    assert len(known) > 70
    named = set()
    for group in re.findall(r"\[([^\]]*)\]", COVER.read_text()):
        named |= set(re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", group))
    assert len(named) > 30
    assert named - NOT_CASES - known == set()


def test_cover_letter_uffd_move_counts_are_the_case_table():
    n = len(cases()) + 1  # orch's dmesg_clean testcase
    text = COVER.read_text()
    x86 = re.search(r"x86_64: uffd_move (\d+)/(\d+)", text)
    arm = re.search(r"arm64: uffd_move (\d+)/(\d+) \((\d+) soft-dirty", text)
    assert (int(x86[1]), int(x86[2])) == (n, n)
    assert int(arm[2]) == n and int(arm[1]) + int(arm[3]) == n
