"""The results page of a real coverage run, in a real browser: headless Chromium from Debian
driven by selenium (tests/support/browser.py).

`coverage_run` (tests/slow/conftest.py) is the output directory of a real
`orch run --coverage --arch x86_64`; its report.html is the page `orch run` wrote. The test
checks the matrix against results.json, follows the link of a patch with a line not run
into the series, finds that line marked not run, and saves a screenshot: report.png in the
test's own directory (pytest's tmp_path; in CI, /tmp/pytest-of-root/pytest-N/
test_page_of_a_coverage_run_in0/report.png, kept for pytest's last 3 sessions).
"""

import json
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from orchestrator.results import page
from tests.support.browser import chromium, timings

pytestmark = pytest.mark.slow


def test_page_of_a_coverage_run_in_chromium(coverage_run, tmp_path):
    out = Path(coverage_run)
    html = out / page.FILENAME
    assert html.is_file(), f"orch run wrote no {page.FILENAME} in {out}"
    data = json.loads((out / "results.json").read_text())
    cov = data.get("coverage")
    assert cov and cov.get("patches"), "the coverage run's results.json has no coverage"
    target = next(((p, ln) for p in cov["patches"] for ln in p["lines"]
                   if ln["status"] == "not_run"), None)
    assert target, "the coverage run has no line not run: nothing to click through to"
    patch, line = target
    with chromium() as driver:
        driver.get(html.resolve().as_uri())
        t = timings(driver)
        print(f"{html}: {html.stat().st_size} bytes, load event {t['load']:.0f} ms")
        assert driver.title.startswith(f"orch run: {data['status']}")

        # The matrix: a row per cell, a column per test binary, each square's counts.
        table = driver.find_element(By.CSS_SELECTOR, "table.matrix")
        heads = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
        binaries = list(dict.fromkeys(t["binary"] for t in data["tests"]
                                      if not t["binary"].startswith("orch-")))
        assert heads == ["cell", "result", "lines run", *binaries]
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [r.get_attribute("data-cell") for r in rows] == [c["id"] for c in data["cells"]]
        for row, c in zip(rows, data["cells"], strict=True):
            assert row.find_element(By.CSS_SELECTOR, "td.result").text.startswith(c["status"])
            for td in row.find_elements(By.CSS_SELECTOR, "td[data-binary]"):
                mine = [t for t in data["tests"] if t["cell"] == c["id"]
                        and t["binary"] == td.get_attribute("data-binary")]
                n = {s: sum(1 for t in mine if t["status"] == s) for s in
                     ("pass", "fail", "skip", "error")}
                assert td.get_attribute("title") == (
                    f"{n['pass']} passed, {n['fail']} failed, {n['skip']} skipped, "
                    f"{n['error']} errors")
                assert ("fail" in td.get_attribute("class")) == bool(n["fail"] + n["error"])
            ran = cov["cells"][c["id"]]
            assert f"{ran['run']}/{ran['executable']}" in row.text

        # Into the series: the patch's link, then its line marked not run.
        link = driver.find_element(By.LINK_TEXT, patch["name"])
        link.click()
        WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith(
            f"#patch-{patch['index']}"))
        section = driver.find_element(By.ID, f"patch-{patch['index']}")
        assert section.find_element(By.TAG_NAME, "h3").is_displayed()
        marked = section.find_elements(By.CSS_SELECTOR, "tr.not-run")
        where = f"{line['file']}:{line['line']}"
        hit = [r for r in marked if r.find_element(By.CSS_SELECTOR, "td.where").text == where]
        assert hit, f"{where} is not marked not run in patch {patch['index']}"
        assert hit[0].find_element(By.CSS_SELECTOR, "td.status").text == "not run"
        assert hit[0].is_displayed()
        # the browser scrolled to the patch: its top is at the viewport's (sub-pixel)
        top = driver.execute_script(
            "return arguments[0].getBoundingClientRect().top", section)
        assert -2 < top < driver.execute_script("return window.innerHeight") / 2

        shot = tmp_path / "report.png"
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", hit[0])
        assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")
