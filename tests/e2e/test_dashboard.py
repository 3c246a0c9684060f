"""``kubetune dashboard`` in headless Chromium against devcluster while a study runs: the
studies list, a click into the study, a trial appearing without a reload, sorting the trial
table and opening a trial's log. Screenshots of both pages go to test-artifacts/."""

from __future__ import annotations

import dashboards
import pytest
from browser import ARTIFACTS, chromium, full_page_screenshot
from conftest import Cluster, wait_for
from kubetune._dashboard import plotlyjs
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from studies import study

pytestmark = pytest.mark.e2e

# A line of its own before the toy trainer's output, for the log view to show.
TRAIN = ("import os, runpy, sys\n"
         "print(f\"trial {os.environ['KUBETUNE_TRIAL']} of {os.environ['KUBETUNE_STUDY']}"
         " starting\", flush=True)\n"
         "sys.argv = ['kubetune_trainer', 'toy', 'curves', '--steps', '6', '--sleep', '0.6']\n"
         "runpy.run_module('kubetune_trainer', run_name='__main__', alter_sys=True)\n")


@pytest.fixture
def dashboard(cluster: Cluster):
    with dashboards.serving(cluster) as url:
        yield url


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


# Read in one script call: the table is redrawn live, so element handles go stale.
def rows(driver) -> list[int]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#trials tbody tr'))"
        ".map(r => Number(r.getAttribute('data-trial')))")


def column(driver, index: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#trials tbody tr'))"
        ".map(r => r.children[arguments[0]].textContent)", index)


def text_of(driver, selector: str) -> str:
    return driver.execute_script(
        "var e = document.querySelector(arguments[0]); return e ? e.textContent : ''", selector)


def classes(driver, selector: str) -> str:
    return driver.execute_script(
        "var e = document.querySelector(arguments[0]); return e ? e.className : ''", selector)


def test_dashboard_follows_a_running_study(cluster: Cluster, running_operator, namespace,
                                           dashboard: str, browser):
    manifest = study("dash-demo", space={
        "x1": {"type": "float", "low": -2.0, "high": 2.0},
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        "opt": {"type": "categorical", "values": ["adam", "sgd"]}},
        budget={"maxTrials": 8, "parallelism": 2, "maxFailedTrials": 2},
        container={"command": ["python", "-c", TRAIN], "args": []})
    cluster.apply(manifest, namespace)

    browser.get(dashboard)
    key = f"{namespace}/dash-demo"

    def open_study() -> bool:
        # The list is redrawn live: a row found a moment ago may be replaced before the click.
        try:
            browser.find_element(By.CSS_SELECTOR,
                                 f"tr[data-study='{key}'] a.study-link").click()
        except (NoSuchElementException, StaleElementReferenceException):
            return False
        return True

    wait_for(open_study, timeout=30, what="the study in the list, to click it")
    wait_for(lambda: browser.current_url.endswith(f"/studies/{namespace}/dash-demo"),
             what="the study page")
    first = wait_for(lambda: rows(browser), timeout=60, what="trial rows")
    # Live: a trial appears in the same document, without a reload.
    browser.execute_script("window.kubetuneMark = 'same page';")
    wait_for(lambda: len(rows(browser)) > len(first), timeout=90, what="a new trial row")
    assert browser.execute_script("return window.kubetuneMark") == "same page"
    assert text_of(browser, "#live") == "live"

    # Let the study finish, so the screenshot shows every chart with data.
    wait_for(lambda: text_of(browser, "#summary .badge") == "MaxTrialsReached",
             timeout=180, what="the study to end, on the page")
    wait_for(lambda: len(rows(browser)) == 8, what="eight rows")
    for chart in ("history", "curves", "parallel", "importance"):
        # Charts are drawn as they scroll into view.
        browser.execute_script(f"document.getElementById('{chart}').scrollIntoView()")
        wait_for(lambda c=chart: browser.find_elements(By.CSS_SELECTOR, f"#{c} .main-svg"),
                 timeout=30, what=f"the {chart} chart drawn")
    assert browser.find_elements(By.CSS_SELECTOR, "#history .scatterlayer .trace")
    # The plotly.js served registers the trace types the charts use, and no others.
    assert set(browser.execute_script(
        "return Object.keys(Plotly.PlotSchema.get().traces)")) == plotlyjs.TRACES

    # Sort by value, then the other way; then by trial number.
    browser.find_element(By.CSS_SELECTOR, "th[data-sort='value']").click()
    wait_for(lambda: "sorted" in classes(browser, "th[data-sort='value']"), what="sorted")
    values = [float(v) for v in column(browser, 2)]
    assert values == sorted(values)
    browser.find_element(By.CSS_SELECTOR, "th[data-sort='value']").click()
    wait_for(lambda: "desc" in classes(browser, "th[data-sort='value']"), what="descending")
    assert [float(v) for v in column(browser, 2)] == sorted(values, reverse=True)
    browser.find_element(By.CSS_SELECTOR, "th[data-sort='number']").click()
    wait_for(lambda: rows(browser) == list(range(8)), what="rows by trial number")

    full_page_screenshot(browser, ARTIFACTS / "dashboard-study.png")

    # A trial's log, in a new tab.
    link = browser.find_element(By.CSS_SELECTOR, "#trials tbody tr[data-trial='3'] a.log-link")
    link.click()
    wait_for(lambda: len(browser.window_handles) == 2, what="the log tab")
    browser.switch_to.window(browser.window_handles[1])
    text = wait_for(lambda: browser.find_element(By.TAG_NAME, "body").text, what="log text")
    assert "trial 3 of dash-demo starting" in text
    browser.close()
    browser.switch_to.window(browser.window_handles[0])

    browser.get(dashboard)
    row = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"tr[data-study='{key}']"),
                   what="the list")[0]
    assert "MaxTrialsReached" in row.text and "8/8" in row.text
    browser.set_window_size(1440, 600)
    full_page_screenshot(browser, ARTIFACTS / "dashboard-studies.png")
