"""``kubetune dashboard`` run against devcluster for a test: started as a user starts it,
stopped after."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

from conftest import Cluster


@contextlib.contextmanager
def serving(cluster: Cluster, *args: str) -> Iterator[str]:
    """The dashboard's URL while it serves; ``args`` are the command's (e.g. ``-n NS``)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubetune.cli", "dashboard", "--no-browser", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        line = proc.stdout.readline()
        if not line.startswith("kubetune dashboard: http://127.0.0.1:"):
            proc.kill()
            raise AssertionError(f"no URL from the dashboard: {line!r} {proc.stderr.read()}")
        yield line.split()[2]
    finally:
        proc.terminate()
        proc.wait(timeout=15)
