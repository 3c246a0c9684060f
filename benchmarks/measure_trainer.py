"""The reference trainer's speed on this machine: the README's trainer table.

Runs ``python -m kubetune_trainer`` on scikit-learn's bundled digits for each configuration
below and reads what it prints: the per-epoch lines on stderr (seconds, samples/s) and the
final report on stdout (val_accuracy). Epoch time and samples/s are medians over the epochs.
The table says the machine's CPU count and load, as both move these figures.

    python benchmarks/measure_trainer.py [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from tables import ROOT, markdown, publish

RESULTS = ROOT / "benchmarks" / "results" / "trainer.md"
MARK = ("<!-- measure:trainer:start -->", "<!-- measure:trainer:end -->")
EPOCH_LINE = re.compile(r"^epoch \d+/\d+ .*\(([\d.]+) s, (\d+) samples/s\)$")


@dataclass(frozen=True)
class Run:
    label: str
    args: tuple[str, ...]


RUNS = (
    Run("MLP, defaults, 1 thread", ("--model=mlp", "--threads=1")),
    Run("MLP, defaults, 2 threads", ("--model=mlp", "--threads=2")),
    Run("CNN width 32, 1 thread", ("--model=cnn", "--width=32", "--threads=1")),
    Run("CNN width 32, 2 threads", ("--model=cnn", "--width=32", "--threads=2")),
    Run("MLP, 5 epochs, lr 3e-3, cosine, 1 thread",
        ("--model=mlp", "--epochs=5", "--lr=3e-3", "--lr_schedule=cosine", "--threads=1")),
)


def measure(run: Run) -> list[str]:
    """The table row of one run: epoch time, samples/s, final val_accuracy, training and
    command wall time."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "kubetune_trainer", *run.args],
                          capture_output=True, text=True, check=True, timeout=1800,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.monotonic() - started
    epochs = [EPOCH_LINE.match(line) for line in done.stderr.splitlines()]
    seconds = [float(m[1]) for m in epochs if m]
    rates = [float(m[2]) for m in epochs if m]
    final = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")][-1]
    if not seconds or not final.get("final"):
        raise SystemExit(f"{run.label}: no epochs or no final report in the trainer's output")
    return [run.label, f"{statistics.median(seconds) * 1000:,.0f} ms",
            f"{statistics.median(rates):,.0f}", f"{final['metrics']['val_accuracy']:.3f}",
            f"{sum(seconds):.2f} s", f"{wall:.1f} s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", action="store_true",
                    help=f"write the table into README.md between {MARK[0]} and {MARK[1]}")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    rows = [measure(run) for run in RUNS]
    text = (f"{os.cpu_count()} CPUs, load average {load:.1f} at the start "
            f"(`python benchmarks/measure_trainer.py`):\n\n"
            + markdown(("run", "epoch time (median)", "samples/s", "val_accuracy",
                        "training time", "whole command"), rows))
    publish(RESULTS, "Reference trainer", text, MARK, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
