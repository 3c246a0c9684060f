"""Conditional search spaces: kubetune's samplers against Optuna's TPE and SMAC3, side by side.

Two problems whose optimum is known, each a space where a choice switches parameters on and
off (``when``), as tuning a deep-learning model does:

- ``optimizer``: sgd (momentum, nesterov), adam (beta1, beta2) or rmsprop (rho), with a shared
  learning rate and weight decay; the best sgd is close to the best adam.
- ``model``: an MLP (layers, width), a CNN (kernel, channels) or a tree ensemble (depth,
  min_leaf, and a learning rate that only the two networks have).

Each optimizer runs every problem for ``--budget`` sequential trials from ``--seeds`` seeds, in
one run; Optuna's TPE asks define-by-run (a parameter only when the earlier choices make it
active) and SMAC gets ConfigSpace conditions. Reported per problem: the mean and median final
regret (best value found minus the optimum), and per peer the seeds where kubetune's regret is
lower, equal (within 1e-9) or higher. ``--readme`` writes the table into the README.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers
from tables import ROOT, markdown, publish

RESULTS = ROOT / "benchmarks" / "results" / "conditional.md"
MARK = ("<!-- bench-conditional:start -->", "<!-- bench-conditional:end -->")
TIE = 1e-9


def _bowl(x: float, best: float, width: float) -> float:
    return ((x - best) / width) ** 2


OPTIMIZER_SPACE: dict[str, dict[str, Any]] = {
    "optimizer": {"type": "categorical", "values": ["sgd", "adam", "rmsprop"]},
    "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"optimizer": ["sgd"]}},
    "nesterov": {"type": "categorical", "values": [True, False],
                 "when": {"optimizer": ["sgd"]}},
    "beta1": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": ["adam"]}},
    "beta2": {"type": "float", "low": 0.9, "high": 0.9999, "when": {"optimizer": ["adam"]}},
    "rho": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": ["rmsprop"]}},
}


def optimizer_loss(p: Mapping[str, Any]) -> float:
    """0 at adam with lr 1e-3, beta1 0.9, beta2 0.999, weight decay 1e-4."""
    base = _bowl(math.log10(p["weight_decay"]), -4.0, 2.0)
    if p["optimizer"] == "sgd":
        return (0.02 + base + _bowl(math.log10(p["lr"]), -1.5, 1.0)
                + _bowl(p["momentum"], 0.9, 0.1) + (0.0 if p["nesterov"] else 0.05))
    if p["optimizer"] == "adam":
        return (base + _bowl(math.log10(p["lr"]), -3.0, 1.0) + _bowl(p["beta1"], 0.9, 0.2)
                + _bowl(p["beta2"], 0.999, 0.05))
    return 0.1 + base + _bowl(math.log10(p["lr"]), -2.5, 1.0) + _bowl(p["rho"], 0.9, 0.2)


MODEL_SPACE: dict[str, dict[str, Any]] = {
    "model": {"type": "categorical", "values": ["mlp", "cnn", "trees"]},
    "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True,
           "when": {"model": ["mlp", "cnn"]}},
    "layers": {"type": "int", "low": 1, "high": 8, "when": {"model": ["mlp"]}},
    "width": {"type": "int", "low": 16, "high": 1024, "log": True, "when": {"model": ["mlp"]}},
    "kernel": {"type": "categorical", "values": [3, 5, 7], "when": {"model": ["cnn"]}},
    "channels": {"type": "int", "low": 8, "high": 256, "log": True, "when": {"model": ["cnn"]}},
    "depth": {"type": "int", "low": 2, "high": 20, "when": {"model": ["trees"]}},
    "min_leaf": {"type": "int", "low": 1, "high": 50, "when": {"model": ["trees"]}},
}


def model_loss(p: Mapping[str, Any]) -> float:
    """0 at a CNN with kernel 5, 64 channels and lr 3e-3."""
    if p["model"] == "mlp":
        return (0.05 + _bowl(math.log10(p["lr"]), -2.0, 1.0) + _bowl(p["layers"], 3, 3)
                + _bowl(math.log2(p["width"]), 8.0, 2.0))
    if p["model"] == "cnn":
        return (_bowl(math.log10(p["lr"]), math.log10(3e-3), 1.0)
                + {3: 0.03, 5: 0.0, 7: 0.02}[p["kernel"]]
                + _bowl(math.log2(p["channels"]), 6.0, 2.0))
    return 0.08 + _bowl(p["depth"], 12, 6) + _bowl(math.log(p["min_leaf"]), math.log(5), 1.5)


PROBLEMS: dict[str, tuple[dict[str, dict[str, Any]], Callable[[Mapping[str, Any]], float]]] = {
    "optimizer": (OPTIMIZER_SPACE, optimizer_loss),
    "model": (MODEL_SPACE, model_loss),
}
OURS = ("kt-auto", "kt-tpe")
PEERS = ("optuna-tpe", "smac-bb", "smac-hpo")


def run(name: str, problem: str, seed: int, budget: int) -> tuple[float, float]:
    """(final regret, seconds) of one optimizer on one problem from one seed."""
    space, loss = PROBLEMS[problem]
    opt = peers.make(name, space, seed, budget, 1, False)
    best, start = math.inf, time.perf_counter()
    for _ in range(budget):
        (params,) = opt.ask(1)
        value = loss(params)
        opt.tell([params], [value])
        best = min(best, value)
    return best, time.perf_counter() - start


def win_tie_loss(ours: Sequence[float], theirs: Sequence[float]) -> str:
    wins = sum(a < b - TIE for a, b in zip(ours, theirs, strict=True))
    ties = sum(abs(a - b) <= TIE for a, b in zip(ours, theirs, strict=True))
    return f"{wins}/{ties}/{len(ours) - wins - ties}"


def report(regrets: dict[str, dict[str, list[float]]], seconds: dict[str, list[float]],
           names: list[str], missing: dict[str, str], args: argparse.Namespace) -> str:
    rows = []
    for problem in PROBLEMS:
        for name in names:
            r = regrets[problem][name]
            wtl = [win_tie_loss(regrets[problem]["kt-auto"], regrets[problem][peer])
                   if peer in names and name == "kt-auto" else "" for peer in PEERS]
            rows.append([problem, name, f"{statistics.fmean(r):.4f}", f"{statistics.median(r):.4f}",
                         *[w or "" for w in wtl]])
    head = ["problem", "optimizer", "mean regret", "median regret",
            *[f"kt-auto W/T/L vs {p}" for p in PEERS]]
    text = markdown(head, rows)
    text += (f"\n\n{args.budget} sequential trials, {args.seeds} seeds per problem and optimizer, "
             "lower regret is better; W/T/L counts seeds (a tie is within 1e-9). Mean seconds "
             "per run: " + ", ".join(f"{n} {statistics.fmean(seconds[n]):.1f}" for n in names)
             + ".")
    if missing:
        text += " Not run: " + "; ".join(f"{n} ({why})" for n, why in missing.items()) + "."
    return text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=int, default=30, help="trials per run")
    p.add_argument("--seeds", type=int, default=10, help="runs per problem and optimizer")
    p.add_argument("--readme", action="store_true", help="write the table into README.md")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SMAC's GP averages empty slices on conditional spaces and says so at every ask.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="numpy")
    names, missing = peers.available(list(OURS + PEERS))
    names = [n for n in OURS + PEERS if n in names]
    regrets: dict[str, dict[str, list[float]]] = {p: {n: [] for n in names} for p in PROBLEMS}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for problem in PROBLEMS:
        for name in names:
            for seed in range(args.seeds):
                regret, took = run(name, problem, seed, args.budget)
                regrets[problem][name].append(regret)
                seconds[name].append(took)
            print(f"{problem} {name}: mean regret {statistics.fmean(regrets[problem][name]):.4f}",
                  file=sys.stderr, flush=True)
    text = report(regrets, seconds, names, missing, args)
    publish(RESULTS, "Conditional search spaces", text, MARK, args.readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
