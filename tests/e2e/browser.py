"""Headless Chromium (Debian's chromium and chromium-driver) through Selenium, for the
dashboard's browser tests and its load benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def chromium(width: int = 1440, height: int = 1000):
    """A headless Chromium driver; the test is skipped with the fix when none is installed."""
    import pytest
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail("headless Chromium is missing: `make browser` (apt-get install chromium "
                    "chromium-driver) installs it")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars",
                "--no-proxy-server"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def full_page_screenshot(driver, path: Path) -> None:
    """The whole page, not just the window: the window grows to the document's height."""
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(6000, height + 120))
    driver.execute_script("window.scrollTo(0, 0)")
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
