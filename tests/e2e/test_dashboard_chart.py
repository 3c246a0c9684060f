"""The dashboard installed with the Helm chart (``dashboard.enabled``) on devcluster: it runs
as a pod under its own ServiceAccount (the node agent runs it on loopback, so its port is
reached without a port-forward), serves the same pages in headless Chromium, opens a trial's
log through ``pods/log``, and every call it made was a read that its Role allowed, each rule of
which it used.

The release runs no operator of its own (``replicas=0``): the session's operator runs the
study, so no study has two operators.
"""

from __future__ import annotations

import subprocess
import urllib.request
import uuid

import pytest
from browser import ARTIFACTS, chromium, full_page_screenshot
from conftest import Cluster, wait_for
from selenium.webdriver.common.by import By
from studies import study
from test_chart import (
    CHART,
    RELEASE,
    _adopt,
    _audit,
    _free_port,
    _rbac_key,
    _render,
    _restore,
    _rules,
)

pytestmark = pytest.mark.e2e

READS = {"get", "list", "watch"}


def test_the_chart_serves_the_dashboard_read_only(cluster: Cluster, running_operator):
    namespace = f"dash-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    port = _free_port()
    values = ["replicas=0", "crds.install=false", "rbac.create=false",
              f"watchNamespaces={{{namespace}}}", "dashboard.enabled=true",
              f"dashboard.namespaces={{{namespace}}}", "dashboard.bindAddress=127.0.0.1",
              f"dashboard.port={port}"]
    sets = [a for v in values for a in ("--set", v)]
    saved = _adopt(cluster, _render(cluster, namespace, *values), namespace)
    helm = str(cluster.bin / "helm")
    account = f"system:serviceaccount:{namespace}:{RELEASE}-kubetune-dashboard"
    driver = None
    try:
        cluster.apply(study("in-cluster", toy=["curves", "--steps", "3", "--sleep", "0.3"],
                            budget={"maxTrials": 3, "parallelism": 3}), namespace)
        installed = subprocess.run(
            [helm, "install", RELEASE, str(CHART), "-n", namespace, "--wait", "--timeout",
             "2m", "--force-conflicts", *sets], capture_output=True, text=True,
            env=cluster.env, timeout=180)
        assert installed.returncode == 0, installed.stderr
        url = f"http://127.0.0.1:{port}/"

        def serving() -> bool:
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(serving, timeout=60, what="the in-cluster dashboard on its port")
        driver = chromium()
        driver.get(url)
        key = f"{namespace}/in-cluster"
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, f"tr[data-study='{key}']"),
                 timeout=60, what="the study in the in-cluster list")
        driver.get(f"{url}studies/{namespace}/in-cluster")
        wait_for(lambda: driver.execute_script(
            "return document.querySelector('#summary .badge')?.textContent")
            == "MaxTrialsReached", timeout=120, what="the study to end, on the page")
        logs = wait_for(lambda: driver.execute_script(
            "return Array.from(document.querySelectorAll('a.log-link')).map(a => a.href)"),
            what="log links")
        with urllib.request.urlopen(logs[0], timeout=10) as r:
            assert r.status == 200
        full_page_screenshot(driver, ARTIFACTS / "dashboard-in-cluster.png")

        # Read-only, least privilege: every call a read its Role allows, every rule used.
        role = cluster.get("role", "-n", namespace, f"{RELEASE}-kubetune-dashboard")
        calls = [e for e in _audit(cluster, account) if _rbac_key(e)]
        assert calls, "no audited call from the dashboard's account"
        assert {e["verb"] for e in calls} <= READS
        denied = [e for e in calls if e["responseStatus"]["code"] == 403]
        assert not denied, denied[:3]
        assert {_rbac_key(e) for e in calls} == _rules(role)
    finally:
        if driver is not None:
            driver.quit()
        subprocess.run([helm, "uninstall", RELEASE, "-n", namespace, "--wait",
                        "--ignore-not-found"], capture_output=True, env=cluster.env,
                       timeout=120)
        _restore(cluster, saved)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
