"""Fixtures of the booking page's browser tests (run by scripts/browser-test).

Each test gets fresh headless Chromium sessions (Debian's chromium and
chromedriver, never a downloaded browser) from the `browsers` factory; when a
test fails, every session it opened leaves a screenshot and its page source in
$SLOTGUARD_BROWSER_SHOTS (.local/browser-screenshots/), named after the test.
"""
import os
import pathlib

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def new_browser(width=1280, height=900):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--lang=en-US", f"--window-size={width},{height}", "--no-first-run",
                "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture
def browsers(request):
    """A factory of browser sessions, all closed after the test."""
    opened = []

    def open_one(**kwargs):
        driver = new_browser(**kwargs)
        opened.append(driver)
        return driver

    yield open_one
    failed = any(getattr(request.node, "rep_" + w, None) is not None and getattr(request.node, "rep_" + w).failed
                 for w in ("setup", "call"))
    shots = pathlib.Path(os.environ.get("SLOTGUARD_BROWSER_SHOTS", ".local/browser-screenshots"))
    for i, driver in enumerate(opened):
        try:
            if failed:
                shots.mkdir(parents=True, exist_ok=True)
                base = shots / f"{request.node.name}-{i}"
                driver.save_screenshot(str(base.with_suffix(".png")))
                base.with_suffix(".html").write_text(driver.page_source, encoding="utf-8")
                print(f"saved {base}.png and .html")
        finally:
            driver.quit()


@pytest.fixture
def browser(browsers):
    return browsers()
