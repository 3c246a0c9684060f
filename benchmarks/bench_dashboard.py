"""The dashboard's study page at 10,000 finished trials, in headless Chromium.

A Store is filled with one synthetic study of 10,000 finished trials (Jobs with recorded
results and 27-step curves, a quarter pruned; tests/dashboard/synthetic.py), as the watches
would fill it, and served by the dashboard's own server on 127.0.0.1. For each run a fresh
browser profile opens the study page (so plotly.js is fetched too) and a second load in the
same browser follows (plotly.js from its cache); before the second, one Job changes, as while
a study runs. The server has read the study when the page is opened, as it does when its
watches deliver a change; that first read of 10,000 Jobs is timed on its own.

First render: from the navigation's start to the moment the first screen is drawn (the
summary, the optimization history and the learning curves) and the trial table has its rows
(performance.now() in the page); the charts below the fold are drawn when scrolled to, and the
time that takes is reported too (the parameter importance is asked for only then). The page
asks for the study's data beside plotly.js, so the summary and the table are drawn while plotly.js
(served with only the trace types the charts use registered: ``_dashboard/plotlyjs.py``) is
still being evaluated. Payload: bytes on the wire (gzip where the server compresses) once every
chart is drawn, from the browser's resource timing; the data is the page's JSON.
Targets (issue 17): first render under 2 s, payload under 2 MB.

    python benchmarks/bench_dashboard.py [--trials 10000] [--runs 5] [--readme]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "dashboard"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_operator import publish  # noqa: E402
from browser import chromium  # noqa: E402
from kubetune._dashboard import incremental, server  # noqa: E402
from kubetune._dashboard.store import Store  # noqa: E402
from synthetic import study_object, trial_jobs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "dashboard.md"
MARKS = ("<!-- bench:dashboard:start -->", "<!-- bench:dashboard:end -->")

# Resolves once what the first screen shows is drawn (the summary, the charts in view: history
# and learning curves) and the trial table has its rows; returns the time since navigation.
_DRAWN = """
var done = arguments[arguments.length - 1];
function ready() {
  return ['history', 'curves'].every(function (id) {
    return document.querySelector('#' + id + ' .main-svg'); }) &&
    document.querySelector('#summary .badge') &&
    document.querySelectorAll('#trials tbody tr').length > 0;
}
(function check() { if (ready()) done(performance.now()); else requestAnimationFrame(check); })();
"""
# Scrolls down to the charts below the fold and resolves once all four are drawn.
_ALL_DRAWN = """
var done = arguments[arguments.length - 1];
var start = performance.now();
var ids = ['parallel', 'importance'];
(function next(i) {
  if (i === ids.length) { done(performance.now() - start); return; }
  document.getElementById(ids[i]).scrollIntoView();
  (function check() {
    if (document.querySelector('#' + ids[i] + ' .main-svg')) next(i + 1);
    else requestAnimationFrame(check);
  })();
})(0);
"""
_BYTES = """
var nav = performance.getEntriesByType('navigation')[0];
var res = performance.getEntriesByType('resource');
function sum(f) { return res.filter(f).reduce(function (a, r) { return a + r.transferSize; }, 0); }
return {total: nav.transferSize + sum(function () { return true; }),
        data: sum(function (r) { return r.name.indexOf('/api/studies/') >= 0; }),
        plotly: sum(function (r) { return r.name.indexOf('plotly.min.js') >= 0; })};
"""


def serve(dash: server.Dashboard) -> str:
    """The dashboard on a free loopback port, in a thread; returns its URL."""
    ready = threading.Event()
    url: list[str] = []

    def run() -> None:
        asyncio.run(server.serve(dash, "127.0.0.1", 0, lambda u: (url.append(u), ready.set())))

    threading.Thread(target=run, daemon=True).start()
    ready.wait(30)
    return url[0]


def measure(url: str, dash: server.Dashboard, store: Store, jobs: list[dict], runs: int
            ) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in
                                   ("cold", "warm", "total", "data", "plotly", "below")}
    page = f"{url}studies/team-a/big"
    for _ in range(runs):
        dash._importance.clear()
        driver = chromium()
        driver.set_script_timeout(60)
        try:
            driver.get(page)
            out["cold"].append(driver.execute_async_script(_DRAWN))
            out["below"].append(driver.execute_async_script(_ALL_DRAWN))
            sizes = driver.execute_script(_BYTES)
            for k in ("total", "data", "plotly"):
                out[k].append(sizes[k])
            job = copy.deepcopy(jobs[-1])
            job["metadata"]["resourceVersion"] = str(time.time_ns())
            store.apply("jobs", "MODIFIED", job)
            driver.get(page)
            out["warm"].append(driver.execute_async_script(_DRAWN))
        finally:
            driver.quit()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()

    store = Store()
    dash = server.Dashboard(store, lambda ns, pod: "")
    store.on_change = dash.changed
    store.replace("studies", None, [study_object(max_trials=args.trials)])
    jobs = trial_jobs(args.trials)
    store.replace("jobs", None, jobs)
    url = serve(dash)
    reads = []
    for _ in range(args.runs):
        start = time.perf_counter()
        incremental.StudyReader().view(study_object(max_trials=args.trials), jobs, [], [])
        reads.append((time.perf_counter() - start) * 1000)
    m = measure(url, dash, store, jobs, args.runs)
    m["read"] = reads

    def med(key: str) -> float:
        return statistics.median(m[key])

    load = os.getloadavg()[0]
    text = "\n".join([
        f"{args.trials:,} finished trials (a quarter pruned, 27-step curves); headless "
        f"Chromium and the server on one machine of {os.cpu_count()} CPUs (load average "
        f"{load:.1f}); median of {args.runs} runs (min-max).",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| the server's first read of the {args.trials:,} Jobs (once, at start) | "
        f"{med('read'):.0f} ms | |",
        "| first render, new browser (plotly.js fetched) | "
        f"{med('cold'):.0f} ms "
        f"({min(m['cold']):.0f}-{max(m['cold']):.0f}) | under 2000 ms |",
        f"| first render, plotly.js cached, one Job changed since | {med('warm'):.0f} ms "
        f"({min(m['warm']):.0f}-{max(m['warm']):.0f}) | under 2000 ms |",
        f"| bytes on the wire, whole page | {med('total') / 1e6:.2f} MB | under 2 MB |",
        f"| of which the study's JSON (page, table, importance) | {med('data') / 1e3:.0f} kB | |",
        f"| of which plotly.js (gzip, cached a day) | {med('plotly') / 1e6:.2f} MB | |",
        "| then, scrolled down: parallel coordinates (WebGL) and importance drawn | "
        f"{med('below'):.0f} ms | |",
    ])
    publish(RESULTS, "Dashboard at 10,000 trials", text, MARKS, args.readme)


if __name__ == "__main__":
    main()
