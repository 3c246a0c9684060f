"""The ``kubetune`` command against a real API server and the operator: a small study is
followed with ``watch`` until it ends, then read with ``get`` (also as ``kubectl kubetune``)
and drawn with ``plot``."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cluster
from studies import study

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def kubetune(cluster: Cluster, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubetune.cli", *args], capture_output=True,
                          text=True, env=cluster.env, timeout=timeout)


def figure(html: str, name: str) -> dict:
    figs = json.loads(re.search(r'id="kubetune-figures">(.*?)</script>', html, re.S).group(1))
    assert figs[name] is not None, f"no {name} chart in the report"
    return figs[name]


def test_watch_get_and_plot_a_study(cluster: Cluster, running_operator, namespace, tmp_path):
    manifest = study("cli-demo", toy=["curves", "--steps", "4", "--sleep", "0.2"],
                     budget={"maxTrials": 6, "parallelism": 3, "maxFailedTrials": 2})
    cluster.apply(manifest, namespace)

    watch = subprocess.Popen(
        [sys.executable, "-m", "kubetune.cli", "watch", "cli-demo", "-n", namespace,
         "--interval", "0.5", "--timeout", "75"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        out, err = watch.communicate(timeout=90)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert watch.returncode == 0, f"watch exited {watch.returncode}: {err}\n{out[-2000:]}"
    final = out.strip().split("Study cli-demo")[-1]
    assert ": MaxTrialsReached" in final.splitlines()[0]
    assert "[" + "#" * 10 in final and "6/6 (100%)" in final
    assert "done 6 (succeeded 6, failed 0, pruned 0)   running 0   pending 0" in final
    assert re.search(r"best loss [0-9.e+-]+ \(trial \d+: x1=", final)
    assert "Latest events:" in final and "NewBestTrial" in final and "StudySucceeded" in final
    # Live progress: frames were written while trials ran, before the last one.
    assert out.count("Study cli-demo") >= 2, out
    assert re.search(r"running [1-3]", out)

    obj = cluster.get("ts", "-n", namespace, "cli-demo")
    best = obj["status"]["bestTrial"]

    listed = kubetune(cluster, "get", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "TRIALS", "RUNNING", "BEST", "AGE"]
    assert row.split()[:5] == ["cli-demo", "Succeeded", "6/6", "0", f"{best['value']:.6g}"]

    # The same command as a kubectl plugin, across namespaces.
    env = {**cluster.env, "PATH": f"{BIN}{os.pathsep}{cluster.env['PATH']}"}
    plugin = subprocess.run([str(cluster.bin / "kubectl"), "kubetune", "get", "-A"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert plugin.returncode == 0, plugin.stderr
    assert any(line.split()[:3] == [namespace, "cli-demo", "Succeeded"]
               for line in plugin.stdout.splitlines())

    board = kubetune(cluster, "get", "cli-demo", "-n", namespace)
    assert board.returncode == 0, board.stderr
    lines = board.stdout.splitlines()
    assert lines[0] == f"Study cli-demo (namespace {namespace}): MaxTrialsReached"
    table = lines[lines.index("") + 1:]
    assert table[0].split() == ["RANK", "TRIAL", "LOSS", "STATE", "x1", "x2", "DURATION"]
    rows = [line.split() for line in table[1:]]
    assert [r[0] for r in rows] == [str(i) for i in range(1, 7)]
    assert rows[0][1] == str(best["number"]) and all(r[3] == "Succeeded" for r in rows)
    values = [float(r[2]) for r in rows]
    assert values == sorted(values)

    as_json = kubetune(cluster, "get", "cli-demo", "-n", namespace, "-o", "json")
    data = json.loads(as_json.stdout)
    assert [t["rank"] for t in data["trials"]] == list(range(1, 7))
    assert all(len(t["curve"]) == 4 for t in data["trials"])  # 4 steps each

    report = tmp_path / "report.html"
    plotted = kubetune(cluster, "plot", "cli-demo", "-n", namespace, "-o", str(report))
    assert plotted.returncode == 0, plotted.stderr
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    history = figure(html, "history")
    assert sum(len(t["x"]) for t in history["data"] if t["mode"] == "markers") == 6
    assert len(figure(html, "parallel")["data"][0]["dimensions"][0]["values"]) == 6
    assert len({n for t in figure(html, "curves")["data"] for n in t["customdata"]} - {None}) == 6
    assert sorted(figure(html, "importance")["data"][0]["y"]) == ["x1", "x2"]

    if importlib.util.find_spec("kaleido") is not None:  # PNG output is optional
        image = tmp_path / "report.png"
        plotted = kubetune(cluster, "plot", "cli-demo", "-n", namespace, "-o", str(image))
        assert plotted.returncode == 0, plotted.stderr
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    missing = kubetune(cluster, "get", "no-such-study", "-n", namespace)
    assert missing.returncode == 1
    assert "TuningStudy 'no-such-study' not found" in missing.stderr
