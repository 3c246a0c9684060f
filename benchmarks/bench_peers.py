"""kubetune's samplers against the strongest public optimizers on COCO bbob, noisy and mixed.

    .venv/bin/python benchmarks/bench_peers.py --readme          # the published cut (resumable)
    .venv/bin/python benchmarks/bench_peers.py --full            # every suite, d, instance
    .venv/bin/python benchmarks/bench_peers.py --smoke --out=/tmp/p.md   # seconds, to see it work

Optimizers: benchmarks/peers.py (ours through ``kubetune.core.suggest``; Optuna TPE, GP and
CMA-ES; nevergrad NGOpt; SMAC3 BlackBox and HPO facades; HEBO). Problems: benchmarks/suites.py.

Protocol:
- One run = one optimizer, one problem (suite, function, instance, d), one mode, one seed, for
  ``--per-dim`` x d trials. Modes: ``seq`` (ask 1, tell 1), ``q4`` and ``q8`` (ask 4 or 8, then
  tell them all). Noisy problems are scored by the true value of the best point evaluated.
- Score: log10 precision, log10(max(f_best - f*, 1e-8)), at the full budget; the table gives
  its mean over functions, instances and seeds (lower is better).
- Win/tie/loss: per function and instance, auto's mean log10 precision over seeds against each
  peer's; within ``TIE`` (0.1, i.e. a factor of 1.26 in f - f*) is a tie, never a win.
- Cost: seconds per suggestion (an ask of k points counts k suggestions), p50 and p95.

Runs go to a process pool (OMP_NUM_THREADS=1) and each finished run is cached in
benchmarks/results/samplers-peers-runs.json with a fingerprint of the code it ran (ours) or
the package version (peers), so an interrupted run resumes and a changed sampler reruns.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads: one core per worker

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import peers  # noqa: E402
import suites  # noqa: E402
from bench_operator import publish  # noqa: E402
from bench_samplers import fingerprint as code_fingerprint  # noqa: E402
from bench_samplers import load_cache, run_all, save_cache  # noqa: E402

__all__ = ["main", "score", "win_tie_loss"]

MARK = ("<!-- bench:peers:start -->", "<!-- bench:peers:end -->")
PROTOCOL = 1
TIE = 0.1
FLOOR = 1e-8
MODES = {"seq": 1, "q4": 4, "q8": 8}
SUITES = ("bbob", "noisy", "mixed")
AUTO = "kt-auto"
# Rough cost per trial, to start the slow runs first.
_COST = {"hebo": 50, "smac-bb": 8, "smac-hpo": 4, "optuna-gp": 4, "kt-auto": 2, "kt-gp": 2}


def log_precision(best: float, optimum: float) -> float:
    return math.log10(max(best - optimum, FLOOR))


def run_task(task: dict) -> tuple[dict, dict]:
    """One run: the true value of every trial and the seconds each ask took, or the error that
    stopped it (reported, and retried by the next invocation)."""
    try:
        return task, _run(task)
    except Exception as exc:  # one peer's crash must not lose the other runs
        return task, {"error": f"{type(exc).__name__}: {exc}"}


def _run(task: dict) -> dict:
    problem = suites.build(task["problem"], task["seed"])
    batch = MODES[task["mode"]]
    opt = peers.make(
        task["optimizer"], problem.search_space, task["seed"], task["budget"], batch, problem.noisy
    )
    true: list[float] = []
    times: list[list[float]] = []
    while len(true) < task["budget"]:
        k = min(batch, task["budget"] - len(true))
        start = time.perf_counter()
        asked = opt.ask(k)
        times.append([len(true), (time.perf_counter() - start) / k, k])
        results = [problem.evaluate(p) for p in asked]
        opt.tell(asked, [r[0] for r in results])
        true += [r[1] for r in results]
    return {"true": true, "optimum": problem.optimum, "times": times}


def fingerprint(optimizer: str) -> str:
    digest = hashlib.sha256(f"protocol {PROTOCOL}\n".encode())
    digest.update((HERE / "suites.py").read_bytes())
    if optimizer.startswith("kt-"):
        digest.update(code_fingerprint(optimizer[3:]).encode())
    else:
        module = peers._NEEDS[optimizer]
        dist = {"pyrfr": "smac", "cmaes": "optuna"}.get(module, module)
        digest.update(f"{dist} {importlib.metadata.version(dist)}".encode())
    return digest.hexdigest()[:16]


def _fresh(entry: dict | None, print_: str) -> bool:
    return bool(entry) and entry["fingerprint"] == print_ and "error" not in entry


def task_key(t: dict) -> str:
    return f"{t['problem']}|{t['optimizer']}|{t['mode']}|{t['seed']}|{t['budget']}"


# ---- speed of ours at a given history size ---------------------------------------------------

_FIRST = """
import time
start = time.perf_counter()
from kubetune.core import suggest
space = {f"x{i}": {"type": "float", "low": -5.0, "high": 5.0} for i in range(5)}
job = {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "b"}]}}}}
spec = {"objective": {"metric": "y", "direction": "minimize"}, "searchSpace": space,
        "jobTemplate": job}
suggest(spec, [], 1)
print(time.perf_counter() - start)
"""


def first_suggestion_seconds(runs: int) -> list[float]:
    """Seconds from a fresh interpreter's start of import to its first suggestion."""
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", _FIRST], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]


def history_timing(history: int, asks: int, dim: int) -> list[float]:
    """Seconds per ``auto`` suggestion after ``history`` trials on bbob f10 (ellipsoid)."""
    problem = suites.build(f"bbob/10/1/{dim}", 0)
    opt = peers.make(AUTO, problem.search_space, 0, history + asks, 1, False)
    rng = np.random.default_rng(0)
    params = [
        {f"x{i}": float(v) for i, v in enumerate(row)} for row in rng.uniform(-5, 5, (history, dim))
    ]
    from kubetune.core.trials import Trial, TrialState

    # A random history, as if told one by one.
    opt.trials = [
        Trial(i, p, TrialState.SUCCEEDED, problem.evaluate(p)[0]) for i, p in enumerate(params)
    ]
    out = []
    for _ in range(asks):
        start = time.perf_counter()
        (p,) = opt.ask(1)
        out.append(time.perf_counter() - start)
        opt.tell([p], [problem.evaluate(p)[0]])
    return out


def speed_lines(args: argparse.Namespace) -> list[str]:
    first = first_suggestion_seconds(3)
    out = [
        "**auto's speed** (s per suggestion; a random history of n trials on bbob f10 at d = 5, "
        f"then {args.timing_asks} suggestions; the first suggestion is timed from a fresh "
        "interpreter's first import, 3 processes)",
        "",
        "| measure | p50 | p95 | target |",
        "|---|---|---|---|",
        f"| first suggestion, fresh process | {np.median(first):.2f} | {max(first):.2f} (max) "
        "| < 1 s |",
    ]
    for n, target in ((100, "< 0.1 s"), (1000, "< 1 s")):
        t = history_timing(n, args.timing_asks, 5)
        out.append(
            f"| {n} trials | {np.quantile(t, 0.5):.3f} | {np.quantile(t, 0.95):.3f} | {target} |"
        )
    return [*out, ""]


# ---- scoring ----------------------------------------------------------------------------------


def score(cache: dict, tasks: Sequence[dict], prints: dict) -> dict:
    """{(suite, dim, mode): {problem: {optimizer: [log10 precision per seed]}}}."""
    out: dict[tuple, dict[str, dict[str, list[float]]]] = {}
    for t in tasks:
        entry = cache.get(task_key(t))
        if not _fresh(entry, prints[t["optimizer"]]):
            continue
        suite, _, _, dim = t["problem"].split("/")
        cell = out.setdefault((suite, dim, t["mode"]), {}).setdefault(t["problem"], {})
        cell.setdefault(t["optimizer"], []).append(
            log_precision(min(entry["true"]), entry["optimum"])
        )
    return out


def win_tie_loss(rows: dict[str, dict[str, list[float]]], ours: str, peer: str) -> tuple:
    """(wins, ties, losses) of ``ours`` against ``peer`` over the problems both ran."""
    w = t = lo = 0
    for cell in rows.values():
        if ours not in cell or peer not in cell:
            continue
        diff = float(np.mean(cell[ours]) - np.mean(cell[peer]))
        if abs(diff) <= TIE:
            t += 1
        elif diff < 0:
            w += 1
        else:
            lo += 1
    return w, t, lo


def _order(item: tuple) -> tuple:
    (suite, dim, mode), _ = item
    return suite, int(dim), mode


def _ms(values: list[float], q: float) -> str:
    return f"{1000 * float(np.quantile(values, q)):.0f}" if values else "-"


def report(args: argparse.Namespace, cache: dict, tasks: list[dict], prints: dict) -> str:
    table = score(cache, tasks, prints)
    opts = args.optimizers
    out = [
        f"Cut: suites {', '.join(args.suites)}; d = {', '.join(map(str, args.dims))}; "
        f"functions {args.functions_text}; instances {args.instances_text}; "
        f"{args.seeds} seed(s); budget {args.per_dim} x d trials; modes {', '.join(args.modes)}. "
        "Mean log10 precision log10(f_best - f*) at the full budget, floored at -8; lower is "
        f"better. W/T/L: auto against the peer per function and instance, a difference of at "
        f"most {TIE} in mean log10 precision is a tie.",
        "",
    ]
    if args.missing:
        out += [
            "Not run (not installable here): "
            + "; ".join(f"{k}: {v}" for k, v in args.missing.items()),
            "",
        ]
    times: dict[str, list[float]] = {o: [] for o in opts}
    for t in tasks:
        entry = cache.get(task_key(t))
        if _fresh(entry, prints[t["optimizer"]]):
            times[t["optimizer"]] += [s for _, s, k in entry["times"] for _ in range(int(k))]
    out.append("| suite | d | mode | " + " | ".join(opts) + " |")
    out.append("|---" * (len(opts) + 3) + "|")
    targets: list[str] = []
    for (suite, dim, mode), rows in sorted(table.items(), key=_order):
        means = {}
        for o in opts:
            vals = [v for cell in rows.values() for v in cell.get(o, [])]
            complete = all(o in cell for cell in rows.values())
            means[o] = float(np.mean(vals)) if vals and complete else math.nan
        finite = {o: m for o, m in means.items() if not math.isnan(m)}
        best = min(finite.values()) if finite else math.nan
        cells = [
            "-" if math.isnan(m) else (f"**{m:.2f}**" if m == best else f"{m:.2f}")
            for m in means.values()
        ]
        out.append(f"| {suite} | {dim} | {mode} | " + " | ".join(cells) + " |")
        if AUTO in finite:
            rivals = {o: m for o, m in finite.items() if o not in peers.OURS}
            # Strictly lowest: an equal mean is a tie, not a pass.
            lowest = AUTO if all(finite[AUTO] < m for m in rivals.values()) else "no"
            wtl = {p: win_tie_loss(rows, AUTO, p) for p in rivals}
            more = all(w > lo for w, _, lo in wtl.values())
            absent = [o for o in opts if o not in finite]
            ok = bool(rivals) and lowest == AUTO and more and not absent
            targets.append(
                f"{'PASS' if ok else 'MISS'} {suite} d={dim} {mode}: auto "
                f"{'lowest' if lowest == AUTO else 'not lowest'} ({finite[AUTO]:.2f} vs best peer "
                f"{min(rivals.values(), default=math.nan):.2f}); W/T/L "
                + ", ".join(f"{p} {w}/{t}/{lo}" for p, (w, t, lo) in wtl.items())
                + (f"; no complete data for {', '.join(absent)}" if absent else "")
            )
            for problem, cell in sorted(rows.items()):
                peer_means = [np.mean(v) for o, v in cell.items() if o not in peers.OURS]
                if AUTO in cell and peer_means:
                    gap = float(np.mean(cell[AUTO]) - min(peer_means))
                    if gap > math.log10(1.25):
                        targets.append(
                            f"  worse than 1.25x best peer: {problem} {mode} ({gap:+.2f} decades)"
                        )
    failed = [
        f"{task_key(t)}: {cache[task_key(t)]['error']}"
        for t in tasks
        if "error" in cache.get(task_key(t), {})
    ]
    if failed:
        out += ["", "Runs that failed (left out of the means above):", "", *failed]
    out += ["", "**Seconds per suggestion** (ms, every suggestion of the runs above)", ""]
    out += ["| optimizer | p50 | p95 |", "|---|---|---|"]
    out += [f"| {o} | {_ms(times[o], 0.5)} | {_ms(times[o], 0.95)} |" for o in opts]
    out += [
        "",
        "**Targets** (auto: lowest mean, more wins than losses against each peer)",
        "",
        "```",
        *targets,
        "```",
        "",
    ]
    return "\n".join(out)


# ---- command line -----------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="all suites, d, 24 functions, 5 instances")
    p.add_argument("--smoke", action="store_true", help="tiny: 2 functions, d=2, 8 trials")
    p.add_argument("--suites", default="bbob,noisy")
    p.add_argument("--dims", default="5")
    p.add_argument("--functions", default="1-24")
    p.add_argument("--instances", default="1")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--per-dim", type=int, default=10, help="trials per dimension")
    p.add_argument("--modes", default="seq,q4")
    p.add_argument("--optimizers", default=",".join(peers.OURS[:1] + peers.PEERS))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-minutes", type=float, default=0)
    p.add_argument("--cache", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--readme", action="store_true")
    p.add_argument("--report-only", action="store_true")
    p.add_argument(
        "--timing-asks", type=int, default=20, help="auto's speed at 100/1000 trials (0: skip)"
    )
    args = p.parse_args(argv)
    if args.full:
        args.suites, args.dims, args.modes = "bbob,noisy,mixed", "2,5,10,20", "seq,q4,q8"
        args.instances, args.seeds = "1-5", 3
    if args.smoke:
        args.dims, args.functions, args.per_dim, args.modes = "2", "1,8", 4, "seq,q4"
        args.optimizers = "kt-auto,optuna-tpe"
        args.timing_asks = 0
        args.suites = "bbob,noisy,mixed"
    args.suites = [s for s in args.suites.split(",") if s]
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        raise SystemExit(f"--suites: unknown {', '.join(sorted(unknown))}; use {', '.join(SUITES)}")
    args.dims = _ints(args.dims)
    args.functions_text, args.instances_text = args.functions, args.instances
    args.function_list, args.instance_list = _ints(args.functions), _ints(args.instances)
    args.modes = [m for m in args.modes.split(",") if m]
    if set(args.modes) - set(MODES):
        raise SystemExit(f"--modes: use some of {', '.join(MODES)}")
    wanted = [o for o in args.optimizers.split(",") if o]
    unknown = set(wanted) - set(peers.OURS + peers.PEERS)
    if unknown:
        raise SystemExit(f"--optimizers: unknown {', '.join(sorted(unknown))}")
    args.optimizers, args.missing = peers.available(wanted)
    name = "samplers-peers-smoke" if args.smoke else "samplers-peers"
    args.cache = args.cache or HERE / "results" / f"{name}-runs.json"
    args.out = args.out or HERE / "results" / f"{name}.md"
    return args


def plan_tasks(args: argparse.Namespace) -> list[dict]:
    problems = []
    for suite in args.suites:
        dims = [5] if suite == "mixed" else args.dims
        for d in dims:
            if suite == "mixed" and d < 3:
                d = 3
            problems += [
                f"{suite}/{f}/{i}/{d}" for f in args.function_list for i in args.instance_list
            ]
        if suite == "mixed":
            problems.append("mixed/mixed6/1/6")
    return [
        {
            "problem": pr,
            "optimizer": o,
            "mode": m,
            "seed": s,
            "budget": args.per_dim * int(pr.split("/")[3]),
        }
        for pr in problems
        for o in args.optimizers
        for m in args.modes
        for s in range(args.seeds)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prints = {o: fingerprint(o) for o in args.optimizers}
    cache = load_cache(args.cache)
    tasks = plan_tasks(args)
    todo = [t for t in tasks if not _fresh(cache.get(task_key(t)), prints[t["optimizer"]])]
    # Mode by mode (a time limit then cuts whole modes last), the slowest runs first in each.
    order = list(MODES)
    todo.sort(key=lambda t: (order.index(t["mode"]), -_COST.get(t["optimizer"], 1) * t["budget"]))
    if not args.report_only and todo:
        print(f"{len(todo)} runs to do, cache {args.cache}", flush=True)
        started = time.perf_counter()

        def done(task: dict, result: dict, i: int) -> None:
            entry = {"fingerprint": prints[task["optimizer"]], **result}
            cache[task_key(task)] = entry
            # Re-read before writing: two invocations (say ours and the peers) may share a cache.
            latest = load_cache(args.cache)
            latest[task_key(task)] = entry
            save_cache(args.cache, latest)
            elapsed = time.perf_counter() - started
            print(f"[{i}/{len(todo)} {elapsed:.0f}s] {task_key(task)}", flush=True)

        run_all(todo, run_task, done, args.workers, args.max_minutes, "spawn")
    body = report(args, cache, tasks, prints)
    if args.timing_asks:
        body += "\n" + "\n".join(speed_lines(args))
    publish(args.out, "Sampler benchmark against public optimizers", body, MARK, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
