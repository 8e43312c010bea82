"""Headless Chromium from Debian (chromium + chromium-driver, installed by ci/setup.sh),
driven by selenium: for the results page's browser test and ci/benchmark.py --page.
Selenium is given the browser and the driver, so it never looks for (or downloads) its own.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"

# Navigation and paint timings of the page just loaded, in ms from navigation start.
TIMINGS_JS = """
const n = performance.getEntriesByType('navigation')[0];
const p = Object.fromEntries(performance.getEntriesByType('paint')
                              .map(e => [e.name, e.startTime]));
return {dom: n.domContentLoadedEventEnd, load: n.loadEventEnd,
        fcp: p['first-contentful-paint'] ?? null, bytes: n.decodedBodySize,
        nodes: document.getElementsByTagName('*').length};
"""


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[webdriver.Chrome]:
    for path, pkg in ((CHROMIUM, "chromium"), (DRIVER, "chromium-driver")):
        if not Path(path).exists() and not shutil.which(Path(path).name):
            raise RuntimeError(f"{path} is missing: apt-get install {pkg} (ci/setup.sh)")
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def timings(driver: webdriver.Chrome) -> dict:
    return driver.execute_script(TIMINGS_JS)
