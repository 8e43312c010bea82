"""The results page (orch report; written by run, merge and compare too), parsed with the
standard library: the matrix, the failures with their crash records, the compare view, the
series from the coverage section, links, escaping, and bad input."""

import json
import re

import pytest

from orchestrator.results import page
from orchestrator.results import record as results
from orchestrator.results.record import Record
from orchestrator.results.record import TestCase as Case
from tests.support.html import parse
from tests.support.orch import orch
from tests.support.records import (
    MOVE,
    PATCH1,
    PATCH2,
    add_coverage,
    cell,
    coverage,
    write_run,
    write_stage_error,
)

BAD = {"uffd_move": {"basic_move": "pass", "thp_ebusy": "fail", "zeropage": "skip"},
       "vma_merge": {"new_before": "pass", "new_after": "pass"}}
DMESG = "\n".join([f"[    1.{i:06d}] line {i}" for i in range(200)] +
                  ["[    2.000000] WARNING: CPU: 0 PID: 61 at mm/userfaultfd.c:1585 "
                   "move_pages+0x1/0x2"])
REPORT = {"kind": "warning", "title": "WARNING in move_pages", "header": "WARNING: ...",
          "file": "mm/userfaultfd.c", "line": 1585, "patch": PATCH1.removesuffix(".patch"),
          "frames": [{"function": "__warn", "offset": "0x1", "size": "0x2"},
                     {"function": "move_pages", "offset": "0x10", "size": "0x300",
                      "file": "mm/userfaultfd.c", "line": 1585,
                      "patch": PATCH1.removesuffix(".patch")},
                     {"function": "do_syscall_64", "offset": "0x39", "size": "0x46",
                      "file": "arch/x86/entry/common.c", "line": 46, "guess": True}],
          "text": "WARNING: CPU: 0 PID: 61 at mm/userfaultfd.c:1585 move_pages"}


def _page(path):
    return parse(path.read_text())


def _run_with_crash(d, c):
    """A run whose uffd_move binary failed its dmesg_clean with a crash record."""
    write_run(d, [(c, BAD)])
    rec = results.load(d / "results.json")
    rec.tests = [t for t in rec.tests if (t.binary, t.name) != ("uffd_move", "dmesg_clean")]
    rec.tests.append(Case(c.id, "uffd_move", "dmesg_clean", "fail", kind="dmesg_clean",
                              message="WARNING in move_pages (mm/userfaultfd.c:1585)",
                              output=DMESG, reports=[REPORT],
                              logs={"dmesg": f"{c.arch}/tests/uffd_move.dmesg"}))
    results.write(d / "results.json", rec)
    return d


def test_matrix_counts_colours_and_links_to_failures(tmp_path):
    x86, arm = cell("x86_64", code=1), cell("arm64")
    d = _run_with_crash(tmp_path / "run", x86)
    write_run(tmp_path / "arm", [(arm, MOVE)])
    assert orch("merge", str(d), str(tmp_path / "arm"), "-o", str(tmp_path / "m")).returncode == 1
    doc = _page(tmp_path / "m" / page.FILENAME)
    table = doc.find("table", "matrix")
    assert [th.text() for th in table.find("thead").find_all("th")] == \
        ["cell", "result", "uffd_move", "vma_merge"]
    rows = table.find("tbody").find_all("tr")
    assert [r.attrs["data-cell"] for r in rows] == [x86.id, arm.id]
    sq = {(r.attrs["data-cell"], td.attrs["data-binary"]): td
          for r in rows for td in r.find_all("td") if "data-binary" in td.attrs}
    bad = sq[(x86.id, "uffd_move")]
    assert bad.text() == "1✓ 2✗ 1s" and bad.classes == {"fail"}
    assert bad.attrs["title"] == "1 passed, 2 failed, 1 skipped, 0 errors"
    # the failing square links to its failures: that section holds both failing cases
    target = doc.by_id(bad.find("a").attrs["href"].removeprefix("#"))
    names = [a.find("h4").children[0].strip() for a in target.find_all("article")]
    assert names == ["thp_ebusy", "dmesg_clean"]
    good = sq[(arm.id, "uffd_move")]
    assert good.text() == "3✓ 1s" and good.classes == {"pass"}
    # a square without failures links to the binary's log, relative to the page
    href = good.find("a").attrs["href"]
    assert (tmp_path / "m" / href).is_file() and href.startswith("../arm/")
    assert rows[0].find("td", "result").text().startswith("failed")


def test_failure_shows_crash_record_and_a_console_excerpt(tmp_path):
    d = _run_with_crash(tmp_path / "run", cell("x86_64", code=1))
    assert orch("report", str(d)).stdout.strip() == str(d / page.FILENAME)
    doc = _page(d / page.FILENAME)
    art = [a for a in doc.find_all("article") if "dmesg_clean" in a.find("h4").text()][0]
    crash = art.find("div", "crash")
    assert crash.find("code", "where").text() == "mm/userfaultfd.c:1585"
    assert crash.find("code", "patch").text() == PATCH1.removesuffix(".patch")
    frames = crash.find("table", "frames").find("tbody").find_all("tr")
    assert [r.find("td").text() for r in frames] == \
        ["__warn+0x1/0x2", "move_pages+0x10/0x300", "do_syscall_64+0x39/0x46"]
    assert frames[1].classes == {"patched"} and "guess" in frames[2].classes
    # the excerpt is the tail of the kernel log, its cut said
    summary = art.find("summary").text()
    assert "kernel log during the binary" in summary and "141 above" in summary
    pre = art.find("pre", "excerpt").text().splitlines()
    assert len(pre) == page.EXCERPT_LINES and pre[-1].endswith("move_pages+0x1/0x2")
    assert [a.text() for a in art.find_all("a")] == ["dmesg"]


def test_a_stage_error_is_linked_from_the_result_column(tmp_path):
    c = cell("arm64", code=3, error="build failed: mm/userfaultfd.c:12: error: x")
    d = write_stage_error(tmp_path / "e", c, "build", "make failed", {"log": "arm64/build.log"})
    page.report(d)
    doc = _page(d / page.FILENAME)
    res = doc.find("table", "matrix").find("td", "result")
    group = doc.by_id(res.find("a").attrs["href"][1:])
    assert "orch-build" in group.find("h3").text()
    assert "make failed" in group.text()
    assert "build failed: mm/userfaultfd.c:12" in doc.find("ul", "errors").text()


def test_series_patch_by_patch_with_lines_marked(tmp_path):
    x86, arm = cell("x86_64"), cell("arm64")
    d = add_coverage(write_run(tmp_path / "r", [(x86, MOVE), (arm, MOVE)]),
                     coverage([x86, arm]))
    page.report(d)
    doc = _page(d / page.FILENAME)
    series = doc.by_id("series")
    assert "2 of 3 executable added lines run (66.7%)" in series.text()  # as summary.md
    links = series.find("table", "patches").find_all("a")
    assert [a.text() for a in links] == [PATCH1, PATCH2]
    p1 = doc.by_id(links[0].attrs["href"][1:])
    rows = p1.find("table", "lines").find("tbody").find_all("tr")
    assert [r.classes for r in rows] == [{"run"}, {"not-run"}, {"not-executable"}]
    assert [r.find("td", "status").text() for r in rows] == ["run", "not run", "not executable"]
    assert rows[1].find("td", "where").text() == "mm/userfaultfd.c:1585"
    assert rows[1].find("td", "src").text() == "\t\terr = -EBUSY; /* <b>not</b> & */"
    assert rows[0].find_all("td")[-1].text() == "uffd_movex86_64: 7×; arm64: 7×"
    assert rows[1].find_all("td")[-1].text() == "x86_64: not run; arm64: not run"
    p2 = doc.by_id("patch-2").find("table", "lines").find("tbody").find("tr")
    assert p2.find_all("td")[-1].text() == "uffd_move, vma_merge" "x86_64: 2×; arm64: not run"
    # the list of lines not run leads to the line itself
    notrun = series.find("ul", "notrun").find_all("a")
    assert len(notrun) == 1 and doc.by_id(notrun[0].attrs["href"][1:]) is rows[1]
    # the matrix has each cell's totals
    assert [td.text() for td in doc.find("table", "matrix").find_all("td")
            if td.find_all("a") and "/3" in td.text()] == ["2/3", "1/3"]


def test_no_coverage_says_so(tmp_path):
    d = write_run(tmp_path / "r", [(cell("x86_64"), MOVE)])
    for section in (None, "absent"):
        if section is None:
            add_coverage(d, None)
        else:
            data = json.loads((d / "results.json").read_text())
            data.pop("coverage")
            (d / "results.json").write_text(json.dumps(data))
        page.report(d)
        series = _page(d / page.FILENAME).by_id("series")
        assert series.find("p", "nocov").text().startswith("no coverage in this run")
        assert not series.find_all("table")


def test_merge_of_many_cells_says_where_a_line_ran(tmp_path):
    cells = [cell(a, tree=f"t{i}") for a in ("x86_64", "arm64") for i in range(3)]
    rec = Record(cells=cells, kind="merge")
    data = rec.to_json() | {"coverage": coverage(cells)}
    doc = parse(page.render(data))
    line = doc.by_id("patch-2-1")
    assert line.find_all("td")[-1].text().endswith("x86_64: 1/3 cells; arm64: 0/3 cells")


def test_compare_view_in_new_and_elsewhere(tmp_path):
    base = write_run(tmp_path / "base", [(cell("x86_64"), MOVE)])
    new = _run_with_crash(tmp_path / "new", cell("x86_64", code=1))
    r = orch("compare", str(base), str(new))
    assert r.returncode == 1, r.stderr
    doc = _page(new / page.FILENAME)
    cmp = doc.by_id("compare")
    pairs = cmp.find("table", "pairs").find("tbody").find_all("tr")
    assert len(pairs) == 1 and pairs[0].find_all("td")[2].text() == "id"
    changes = cmp.find("table", "changes").find("tbody").find_all("tr")
    assert [(r.find_all("td")[0].text(), r.find_all("td")[3].text()) for r in changes] == \
        [("regression", "thp_ebusy"), ("regression", "dmesg_clean")]
    assert "fail" in changes[0].find("td").classes
    # the page shows NEW's record too; written elsewhere, its log links still work
    assert orch("compare", str(base), str(new), "-o", str(tmp_path / "c" / "d")).returncode == 1
    doc = _page(tmp_path / "c" / "d" / page.FILENAME)
    hrefs = [a.attrs["href"] for a in doc.find("table", "matrix").find_all("a")
             if not a.attrs["href"].startswith("#")]
    assert hrefs and all((tmp_path / "c" / "d" / h).is_file() for h in hrefs)
    # orch report picks up a directory's compare.json
    page.report(new, tmp_path / "again.html")
    assert parse((tmp_path / "again.html").read_text()).by_id("compare")


def test_compare_view_lists_coverage_gained_and_lost():
    data = {"base": "a", "new": "b", "exit_code": 0, "counts": {"regression": 0},
            "pairs": [], "changes": [],
            "coverage": {"gained": [{"file": "mm/x.c", "text": "\tret = 1;", "patch": PATCH1}],
                         "lost": []}}
    doc = parse(page.render(Record(cells=[cell("x86_64")]).to_json(), data))
    gained = doc.by_id("compare").find("table", "gained").find("tbody").find("tr")
    assert [td.text() for td in gained.find_all("td")] == ["mm/x.c", "", PATCH1, "\tret = 1;"]


def test_self_contained_escaped_and_every_anchor_resolves(tmp_path):
    c = cell("x86_64", code=1, error='<script>alert("x")</script>')
    d = _run_with_crash(tmp_path / "r", c)
    add_coverage(d, coverage([c]))
    text = (page.report(d)).read_text()
    doc = parse(text)
    assert not doc.find_all("script") and not doc.find_all("link") and not doc.find_all("img")
    assert '<script>alert("x")</script>' in doc.find("ul", "errors").text()
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    ids = {e.id for e in doc.iter() if e.id}
    anchors = [a.attrs["href"][1:] for a in doc.find_all("a") if a.attrs["href"][:1] == "#"]
    assert anchors and set(anchors) <= ids
    assert len(ids) == len([e for e in doc.iter() if e.id])  # no id twice


def test_excerpt_keeps_the_tail_within_its_bounds():
    assert page.excerpt("a\nb\n") == ("a\nb", 0)
    text, cut = page.excerpt("\n".join(str(i) for i in range(100)))
    assert text.splitlines()[-1] == "99" and cut == 100 - page.EXCERPT_LINES
    text, cut = page.excerpt("\n".join("x" * 1000 for _ in range(20)))
    assert len(text) <= page.EXCERPT_CHARS and cut == 20 - len(text.splitlines())


@pytest.mark.parametrize("content, why", [
    (None, "no such file or directory"),
    ("not json", "cannot read an orch results file"),
    ("[]", "not an orch results file (not a JSON object)"),
    ('{"schema": "other"}', "not an orch results file"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, content, why):
    d = tmp_path / "d"
    if content is not None:
        d.mkdir()
        (d / "results.json").write_text(content)
    r = orch("report", str(d))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("orch: report: ")
    assert why in r.stderr


def test_output_to_an_existing_directory_writes_report_html_in_it(tmp_path):
    write_run(tmp_path / "run", [(cell("x86_64"), MOVE)])
    (tmp_path / "pages").mkdir()
    r = orch("report", str(tmp_path / "run"), "-o", str(tmp_path / "pages"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "pages" / page.FILENAME)
    assert "uffd_move" in (tmp_path / "pages" / page.FILENAME).read_text()


def test_a_directory_without_results_names_orch_merge(tmp_path):
    write_run(tmp_path / "runs" / "a", [(cell("x86_64"), MOVE)])
    r = orch("report", str(tmp_path / "runs"))
    assert r.returncode == 2 and "orch merge" in r.stderr and r.stderr.count("\n") == 1


def test_orch_run_writes_its_page(tmp_path, plain_repo, isolated_cache):
    """A run that stopped at its check: the page is there, with the stage's error linked
    from the cell's result."""
    out = tmp_path / "o"
    r = orch("run", "--tree", str(plain_repo), "-o", str(out),
             env={"ORCH_CACHE": str(isolated_cache)})
    assert r.returncode == 2, r.stderr
    doc = _page(out / page.FILENAME)
    assert doc.find("title").text() == "orch run: error (exit 2)"
    row = doc.find("table", "matrix").find("tbody").find("tr")
    assert row.attrs["data-cell"] == "x86_64.plain.none.default.qemu"
    group = doc.by_id(row.find("td", "result").find("a").attrs["href"][1:])
    assert "not a kernel tree" in group.text()


@pytest.mark.parametrize("name, content, why", [
    ("results.json", {"coverage": {"patches": [{"lines": ["x"]}]}},
     "malformed coverage section"),
    ("compare.json", {"counts": {"fix": 0}, "changes": [{"cls": "fix"}]},
     "malformed compare data"),
])
def test_a_malformed_section_is_one_line_exit_2(tmp_path, name, content, why):
    d = write_run(tmp_path / "r", [(cell("x86_64"), MOVE)])
    data = json.loads((d / "results.json").read_text()) if name == "results.json" else {}
    (d / name).write_text(json.dumps(data | content))
    r = orch("report", str(d))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and why in r.stderr, r.stderr
