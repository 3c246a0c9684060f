"""devcluster's costs on this machine: the README's devcluster table.

Starts devcluster in a scratch state folder with the cached binaries and measures the warm
start (up to every node Ready), the binaries' sizes, and each process's resident memory after
it has settled; then the same with the addons the e2e tests run (Kueue and JobSet).
``--cold`` also builds every binary from scratch (empty Go module and build caches in a
scratch folder: minutes of CPU and a download of the Go modules) and keeps that figure, with
its date, in benchmarks/results/devcluster-build.json for later runs to show.

    python benchmarks/measure_devcluster.py [--cold] [--readme]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubetune_devcluster import cluster as devcluster
from tables import ROOT, markdown, publish

RESULTS = ROOT / "benchmarks" / "results" / "devcluster.md"
COLD = ROOT / "benchmarks" / "results" / "devcluster-build.json"
MARK = ("<!-- measure:devcluster:start -->", "<!-- measure:devcluster:end -->")
BUILD = ROOT / "devcluster" / "build.sh"
PROCESSES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "node-agent")
ADDONS = ("kueue", "jobset")
SETTLE_SECONDS = 20


def versions() -> dict[str, str]:
    """The versions build.sh pins (kube_version=..., etcd_version=..., helm_version=...)."""
    return dict(re.findall(r"^(\w+)_version=(\S+)$", BUILD.read_text(), re.M))


def cold_build() -> dict[str, object]:
    """Build every binary with empty caches; the seconds it took and when."""
    with tempfile.TemporaryDirectory(prefix="devcluster-cold-") as scratch:
        env = {**os.environ, "KUBETUNE_DEVCLUSTER_CACHE": f"{scratch}/cache",
               "GOCACHE": f"{scratch}/gocache", "GOMODCACHE": f"{scratch}/gomod"}
        started = time.monotonic()
        subprocess.run(["bash", str(BUILD)], env=env, check=True, stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        subprocess.run(["chmod", "-R", "u+w", scratch], check=False)  # Go's read-only modules
    return {"seconds": round(seconds, 1), "cpus": os.cpu_count(),
            "date": datetime.date.today().isoformat(), "versions": versions()}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(addons: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    """Seconds from nothing to every node Ready (and ``addons`` ready), and each process's
    resident memory after it settled."""
    with tempfile.TemporaryDirectory(prefix="devcluster-measure-") as scratch:
        state_dir = Path(scratch) / "state"
        config = dataclasses.replace(devcluster.ClusterConfig.from_env(state_dir), addons=addons)
        started = time.monotonic()
        state = devcluster.up(config)
        seconds = time.monotonic() - started
        try:
            time.sleep(SETTLE_SECONDS)
            return seconds, {name: rss_mib(state.pids[name])
                             for name in (*PROCESSES, *addons)}
        finally:
            devcluster.down(state_dir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cold", action="store_true", help="also measure a build from scratch")
    ap.add_argument("--readme", action="store_true",
                    help=f"write the table into README.md between {MARK[0]} and {MARK[1]}")
    args = ap.parse_args()
    if args.cold:
        COLD.parent.mkdir(parents=True, exist_ok=True)
        COLD.write_text(json.dumps(cold_build(), indent=1) + "\n")
    bins = devcluster.binaries_dir()
    load = os.getloadavg()[0]
    warm, memory = start(())
    warm_addons, memory_addons = start(ADDONS)
    v = versions()
    mib = {name: (bins / name).stat().st_size / 2**20
           for name in ("kube", "etcd", "helm", *ADDONS)}
    rows = []
    if COLD.exists():
        cold = json.loads(COLD.read_text())
        rows.append((f"cold build of all binaries (k8s {cold['versions']['kube']} multi-call "
                     f"binary, etcd {cold['versions']['etcd']}, helm {cold['versions']['helm']})"
                     f"; measured {cold['date']} on {cold['cpus']} CPUs with --cold",
                     f"{int(cold['seconds'] // 60)} min {cold['seconds'] % 60:.0f} s"))
    rows += [
        ("warm start, binaries cached, to every node Ready", f"{warm:.1f} s"),
        (f"binaries: `kube` {v['kube']} (apiserver, controller-manager, scheduler, kubectl)"
         f" / etcd {v['etcd']} / helm {v['helm']}",
         " / ".join(f"{mib[n]:.0f} MiB" for n in ("kube", "etcd", "helm"))),
        (f"resident memory {SETTLE_SECONDS} s after start: apiserver / controller-manager /"
         " scheduler / etcd / node agent",
         " / ".join(f"{memory[n]:.0f}" for n in PROCESSES) + " MiB"),
        ("warm start with Kueue and JobSet (their CRDs, RBAC, webhooks; what `make test` runs)",
         f"{warm_addons:.1f} s"),
        (f"binaries: kueue {v['kueue']} / jobset {v['jobset']}",
         " / ".join(f"{mib[n]:.0f} MiB" for n in ADDONS)),
        (f"with them, resident memory {SETTLE_SECONDS} s after start: apiserver / etcd / kueue /"
         " jobset", " / ".join(f"{memory_addons[n]:.0f}"
                               for n in ("kube-apiserver", "etcd", *ADDONS)) + " MiB"),
    ]
    text = (f"{os.cpu_count()} CPUs, load average {load:.1f} at the start "
            f"(`python benchmarks/measure_devcluster.py`):\n\n"
            + markdown(("measure", "value"), rows))
    publish(RESULTS, "devcluster", text, MARK, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
