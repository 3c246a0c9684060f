"""Our samplers against Optuna's on the same functions, budgets and seeds.

    .venv/bin/python benchmarks/bench_samplers.py            # the full run (resumable)
    .venv/bin/python benchmarks/bench_samplers.py --quick    # a few minutes, to see it work
    .venv/bin/python benchmarks/bench_samplers.py --report-only --readme

Samplers: ours (auto, gp, tpe, random, cmaes, sobol) through ``kubetune.core.suggest``, and
Optuna's TPESampler, GPSampler (``deterministic_objective=True``: every function here is
deterministic) and RandomSampler, when Optuna is installed (the ``bench`` extra).

Protocol:
- Each run minimises one function (benchmarks/functions.py) with one sampler and one seed for
  the largest budget asked; a smaller budget is scored on the run's first trials, which is
  exact because no sampler knows the budget.
- Sequential (batch 1): ask, evaluate, report. Batch of 4: ask four times, then report all four;
  ours see the earlier asks of the batch as Running trials, Optuna's are asked four times before
  they are told (its TPE and GP treat those as pending).
- Score: normalized regret = (best found - optimum) / (median over seeds of our random search's
  best - optimum), per function, budget and mode; 0 is the optimum, 1 is random search.
  digits-svc has no known optimum: its optimum is the lowest validation error any run found.
- Cost: seconds per suggestion (one ``suggest`` or ``study.ask``), p50 and p95. A separate
  timing run gives TPE a history of 500 trials and times 20 more suggestions.

Runs go to a process pool (2 workers, OMP_NUM_THREADS=1) and each finished run is cached in
benchmarks/results/samplers-runs.json with a fingerprint of the code it ran, so an interrupted
run resumes where it stopped and a changed sampler is run again.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads: one core per worker

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from functions import FUNCTIONS, Function  # noqa: E402
from kubetune.core import suggest  # noqa: E402
from kubetune.core.samplers import sampler_module  # noqa: E402
from kubetune.core.spec import parse_spec  # noqa: E402
from kubetune.core.trials import Trial, TrialState  # noqa: E402
from peers import optuna_distributions  # noqa: E402

__all__ = ["main"]

OURS = ("auto", "gp", "tpe", "random", "cmaes", "sobol")
OPTUNA = ("optuna-tpe", "optuna-gp", "optuna-random")
MODES = {"seq": 1, "batch4": 4}
README_START, README_END = "<!-- bench:samplers:start -->", "<!-- bench:samplers:end -->"
# Bumped when the protocol changes, which makes every cached run stale.
PROTOCOL = 1
TIMING_FUNCTIONS = ("hartmann6", "mixed6")
# Rough relative cost of a run, to start the slow ones first.
_COST = {"optuna-gp": 30, "gp": 10, "auto": 10}
_JOB = {"spec": {"template": {"spec": {"containers": [{"name": "bench", "image": "none"}]}}}}


# ---- one run ----------------------------------------------------------------------------------


def _study(fn: Function, sampler: str, seed: int):
    return parse_spec(
        {
            "objective": {"metric": "y", "direction": "minimize"},
            "searchSpace": fn.search_space,
            "algorithm": {"name": sampler, "seed": seed},
            "jobTemplate": _JOB,
        }
    )


def _run_ours(fn: Function, sampler: str, seed: int, budget: int, batch: int) -> dict:
    study = _study(fn, sampler, seed)
    trials: list[Trial] = []
    times: list[tuple[int, float]] = []
    while len(trials) < budget:
        asked: list[dict] = []
        for _ in range(min(batch, budget - len(trials))):
            running = [Trial(len(trials) + i, p, TrialState.RUNNING) for i, p in enumerate(asked)]
            start = time.perf_counter()
            (params,) = suggest(study, trials + running, 1)
            times.append((len(trials) + len(asked), time.perf_counter() - start))
            asked.append(params)
        for params in asked:
            trials.append(Trial(len(trials), params, TrialState.SUCCEEDED, fn.evaluate(params)))
    return {"values": [t.value for t in trials], "times": times}


def _optuna_study(sampler: str, seed: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    make = {
        "optuna-tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "optuna-gp": lambda: optuna.samplers.GPSampler(seed=seed, deterministic_objective=True),
        "optuna-random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    return optuna.create_study(direction="minimize", sampler=make[sampler]())


def _run_optuna(fn: Function, sampler: str, seed: int, budget: int, batch: int) -> dict:
    study = _optuna_study(sampler, seed)
    dists = optuna_distributions(fn.search_space)
    values: list[float] = []
    times: list[tuple[int, float]] = []
    while len(values) < budget:
        asked = []
        for _ in range(min(batch, budget - len(values))):
            start = time.perf_counter()
            asked.append(study.ask(dists))
            times.append((len(values) + len(asked) - 1, time.perf_counter() - start))
        for trial in asked:
            value = fn.evaluate(trial.params)
            study.tell(trial, value)
            values.append(value)
    return {"values": values, "times": times}


def _timing_history(fn: Function, trials: int, seed: int) -> list[tuple[dict, float]]:
    """The same random history for both samplers of a timing run."""
    from kubetune.core.samplers.random import RandomSampler
    from kubetune.core.spec import space_of

    space = space_of(_study(fn, "random", seed))
    points = RandomSampler().suggest(space, [], trials, minimize=True, seed=seed)
    return [(p, fn.evaluate(p)) for p in points]


def _time_ours(fn: Function, sampler: str, history: list, asks: int, seed: int) -> list:
    study = _study(fn, sampler, seed)
    trials = [Trial(i, p, TrialState.SUCCEEDED, v) for i, (p, v) in enumerate(history)]
    times = []
    for _ in range(asks):
        start = time.perf_counter()
        (params,) = suggest(study, trials, 1)
        times.append((len(trials), time.perf_counter() - start))
        trials.append(Trial(len(trials), params, TrialState.SUCCEEDED, fn.evaluate(params)))
    return times


def _time_optuna(fn: Function, sampler: str, history: list, asks: int, seed: int) -> list:
    import optuna

    study = _optuna_study(sampler, seed)
    dists = optuna_distributions(fn.search_space)
    study.add_trials(
        [optuna.trial.create_trial(params=p, distributions=dists, value=v) for p, v in history]
    )
    times = []
    for _ in range(asks):
        start = time.perf_counter()
        trial = study.ask(dists)
        times.append((len(study.trials) - 1, time.perf_counter() - start))
        study.tell(trial, fn.evaluate(trial.params))
    return times


_WARM: set[tuple[str, int]] = set()


def _warm_up(sampler: str, budget: int) -> None:
    """A throwaway run, once per process and sampler, so that no timed suggestion pays for
    imports (torch for Optuna's GP, scipy for ours) or first-call set-up."""
    trials = min(12, budget)  # just past the GPs' startup, not into it when budgets are tiny
    if (sampler, trials) in _WARM:
        return
    run = _run_optuna if sampler.startswith("optuna-") else _run_ours
    run(FUNCTIONS["branin"], sampler, 0, trials, 1)
    _WARM.add((sampler, trials))


def run_task(task: dict) -> tuple[dict, dict]:
    """Run one task (a benchmark run or a timing run) and return it with its result."""
    fn = FUNCTIONS[task["function"]]
    ours = not task["sampler"].startswith("optuna-")
    _warm_up(task["sampler"], task.get("budget", task.get("trials", 12)))
    if task["kind"] == "timing":
        history = _timing_history(fn, task["trials"], task["seed"])
        timer = _time_ours if ours else _time_optuna
        return task, {"times": timer(fn, task["sampler"], history, task["asks"], task["seed"])}
    run = _run_ours if ours else _run_optuna
    return task, run(fn, task["sampler"], task["seed"], task["budget"], MODES[task["mode"]])


def run_all(
    todo: Sequence[dict],
    run: Callable[[dict], tuple[dict, dict]],
    done: Callable[[dict, dict, int], None],
    workers: int,
    max_minutes: float,
    start_method: str,
) -> None:
    """Run every task (in this process when ``workers`` <= 1, else in a pool), passing each
    result to ``done`` as it finishes; start none after ``max_minutes`` (0: no limit)."""
    started = time.perf_counter()
    deadline = started + 60 * max_minutes if max_minutes else math.inf
    if workers <= 1:
        for i, task in enumerate(todo, 1):
            if time.perf_counter() > deadline:
                break
            done(*run(task), i)
        return
    context = multiprocessing.get_context(start_method)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(run, t) for t in todo]
        for i, future in enumerate(as_completed(futures), 1):
            done(*future.result(), i)
            if time.perf_counter() > deadline:
                pool.shutdown(wait=True, cancel_futures=True)
                break


# ---- cache ------------------------------------------------------------------------------------


def _local_imports(path: Path, seen: set[Path]) -> None:
    """``path`` and every kubetune module it imports, at any depth (for fingerprints)."""
    if path in seen or not path.exists():
        return
    seen.add(path)
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("kubetune"):
                spec = importlib.util.find_spec(name) if _importable(name) else None
                if spec and spec.origin and spec.origin.endswith(".py"):
                    _local_imports(Path(spec.origin), seen)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def fingerprint(sampler: str) -> str:
    """A hash of what a run depends on: the protocol, the functions and the sampler's code."""
    digest = hashlib.sha256(f"protocol {PROTOCOL}\n".encode())
    digest.update((HERE / "functions.py").read_bytes())
    if sampler.startswith("optuna-"):
        import optuna

        digest.update(f"optuna {optuna.__version__}".encode())
        return digest.hexdigest()[:16]
    files: set[Path] = set()
    # auto picks among all the others, so it depends on all of them. suggest() itself and the
    # spec models are left out: they only pass the spec through.
    for name in OURS if sampler == "auto" else (sampler,):
        spec = importlib.util.find_spec(sampler_module(name))
        _local_imports(Path(spec.origin), files)
    for path in sorted(files):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def task_key(task: dict) -> str:
    if task["kind"] == "timing":
        return f"timing|{task['function']}|{task['sampler']}|{task['trials']}|{task['asks']}"
    return f"run|{task['function']}|{task['sampler']}|{task['mode']}|{task['seed']}"


def load_cache(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save_cache(path: Path, cache: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # one per writer: invocations may share a cache
    tmp.write_text(json.dumps(cache, separators=(",", ":")))
    tmp.replace(path)


def _fresh(entry: dict | None, task: dict, prints: dict) -> bool:
    if not entry or entry.get("fingerprint") != prints[task["sampler"]]:
        return False
    return task["kind"] == "timing" or entry.get("budget", 0) >= task["budget"]


# ---- scoring ----------------------------------------------------------------------------------


def _best(values: Sequence[float], budget: int) -> float:
    return min(values[:budget])


def regret_table(
    cache: dict,
    functions: Sequence[str],
    samplers: Sequence[str],
    seeds: Sequence[int],
    budgets: Sequence[int],
    modes: Sequence[str],
    prints: dict,
) -> dict:
    """{(function, budget, mode): {sampler: [normalized regret per seed]}} from cached runs."""

    def runs(fn: str, sampler: str, mode: str) -> list[list[float]]:
        out = []
        for seed in seeds:
            entry = cache.get(f"run|{fn}|{sampler}|{mode}|{seed}")
            if entry and entry["fingerprint"] == prints.get(sampler):
                out.append(entry["values"])
        return out

    table = {}
    for fn in functions:
        optimum = FUNCTIONS[fn].optimum
        if optimum is None:  # the best any run found, over every sampler, mode and seed
            optimum = min(
                (min(v) for s in samplers for m in modes for v in runs(fn, s, m)), default=0.0
            )
        for budget in budgets:
            for mode in modes:
                baseline = [_best(v, budget) for v in runs(fn, "random", mode)]
                if not baseline:
                    baseline = [_best(v, budget) for v in runs(fn, "optuna-random", mode)]
                scale = statistics.median(baseline) - optimum if baseline else 1.0
                row = {}
                for sampler in samplers:
                    bests = [_best(v, budget) for v in runs(fn, sampler, mode)]
                    row[sampler] = [
                        (b - optimum) / scale if scale > 0 else (0.0 if b <= optimum else math.inf)
                        for b in bests
                    ]
                table[(fn, budget, mode)] = row
    return table


def _quantile(values: Sequence[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else math.nan


def timing_rows(cache: dict, samplers: Sequence[str], prints: dict, at: int) -> dict:
    """{sampler: {"all": [...], "at": [...]}} seconds per suggestion from the cached runs;
    "at" holds the suggestions made with 0.75 * at to at trials before them."""
    out: dict[str, dict[str, list[float]]] = {s: {"all": [], "at": []} for s in samplers}
    for key, entry in cache.items():
        kind, _, sampler, *_ = key.split("|")
        if kind != "run" or sampler not in out or entry["fingerprint"] != prints.get(sampler):
            continue
        for n_before, seconds in entry["times"]:
            out[sampler]["all"].append(seconds)
            if 0.75 * at <= n_before < at:
                out[sampler]["at"].append(seconds)
    return out


# ---- report -----------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.3g}"


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{1000 * seconds:.1f}"


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def targets(
    table: dict, timings: dict, timing_runs: dict, functions, budgets, modes, at: int
) -> list[str]:
    """The PASS/MISS lines."""
    lines = []
    need = math.ceil(5 / 7 * len(functions))
    for budget in budgets:
        for mode in modes:
            wins, ties, worst, missing = 0, 0, 0.0, []
            for fn in functions:
                row = table[(fn, budget, mode)]
                auto = _mean(row.get("auto", []))
                rivals = [_mean(row.get(s, [])) for s in ("optuna-gp", "optuna-tpe")]
                rivals = [r for r in rivals if not math.isnan(r)]
                if math.isnan(auto) or not rivals:
                    missing.append(fn)
                    continue
                better = min(rivals)
                # A tie (both at the optimum, or within 1%) is a tie, never a win.
                if math.isclose(auto, better, rel_tol=0.01, abs_tol=1e-9):
                    ties += 1
                else:
                    wins += auto < better
                ratio = auto / better if better > 0 else (1.0 if auto <= better else math.inf)
                worst = max(worst, ratio)
            ok = not missing and wins >= need and worst <= 1.25
            lines.append(
                f"{'PASS' if ok else 'MISS'} auto vs best of Optuna GP/TPE, budget {budget}, "
                f"{mode}: lower mean regret on {wins}/{len(functions)} functions (need {need}; "
                f"{ties} tied), "
                f"worst ratio {_fmt(worst)} (need <= 1.25)"
                + (f"; no data for {', '.join(missing)}" if missing else "")
            )
    ours, theirs = timings.get("gp", {}).get("at", []), timings.get("optuna-gp", {}).get("at", [])
    if ours and theirs:
        a, b = _quantile(ours, 0.95), _quantile(theirs, 0.95)
        lines.append(
            f"{'PASS' if a < b else 'MISS'} gp p95 suggest time at {at} trials: "
            f"{_ms(a)} ms < Optuna GP's {_ms(b)} ms"
        )
    else:
        lines.append(f"MISS gp vs Optuna GP time at {at} trials: no runs of both")
    for fn, pair in timing_runs.items():
        ours, theirs = pair.get("tpe"), pair.get("optuna-tpe")
        if ours and theirs:
            a, b = _quantile(ours, 0.5), _quantile(theirs, 0.5)
            lines.append(
                f"{'PASS' if a <= b else 'MISS'} tpe p50 suggest time with "
                f"{pair['trials']} trials on {fn}: {_ms(a)} ms <= Optuna TPE's {_ms(b)} ms"
            )
    return lines


def report(args: argparse.Namespace, cache: dict, prints: dict) -> str:
    samplers, functions = args.samplers, args.functions
    table = regret_table(
        cache, functions, samplers, args.seed_list, args.budgets, args.modes, prints
    )
    at = min(100, args.budgets[-1])
    timings = timing_rows(cache, samplers, prints, at)
    timing_runs: dict[str, dict] = {}
    if args.timing_trials:
        for fn in TIMING_FUNCTIONS:
            pair: dict[str, Any] = {"trials": args.timing_trials}
            for s in ("tpe", "optuna-tpe"):
                entry = cache.get(f"timing|{fn}|{s}|{args.timing_trials}|{args.timing_asks}")
                if entry and entry["fingerprint"] == prints.get(s):
                    pair[s] = [t for _, t in entry["times"]]
            timing_runs[fn] = pair

    out = [
        f"Seeds: {len(args.seed_list)}; budgets: {', '.join(map(str, args.budgets))}; modes: "
        f"{', '.join(args.modes)} (batch4 = 4 asks before 4 reports). Normalized regret "
        "(0 = optimum, 1 = median of random search), **mean / median** over seeds; lower is "
        "better. digits-svc's optimum is the best validation error any run found.",
        "",
    ]
    for budget in args.budgets:
        for mode in args.modes:
            out += [f"**Budget {budget}, {mode}**", ""]
            out.append("| function | " + " | ".join(samplers) + " |")
            out.append("|---" * (len(samplers) + 1) + "|")
            for fn in functions:
                row = table[(fn, budget, mode)]
                cells = []
                for s in samplers:
                    v = row.get(s, [])
                    cells.append(f"{_fmt(_mean(v))} / {_fmt(statistics.median(v))}" if v else "-")
                out.append(f"| {fn} | " + " | ".join(cells) + " |")
            out.append("")
    out += [
        f"**Time per suggestion** (ms, over every suggestion of the runs above; at {at}: "
        f"those made with {math.ceil(0.75 * at)} to {at - 1} trials before them)",
        "",
    ]
    out.append(f"| sampler | p50 | p95 | p50 at {at} | p95 at {at} |")
    out.append("|---|---|---|---|---|")
    for s in samplers:
        t = timings[s]
        out.append(
            f"| {s} | {_ms(_quantile(t['all'], 0.5))} | {_ms(_quantile(t['all'], 0.95))} "
            f"| {_ms(_quantile(t['at'], 0.5))} | {_ms(_quantile(t['at'], 0.95))} |"
        )
    out.append("")
    if timing_runs:
        out += [
            f"**TPE with {args.timing_trials} trials** (ms per suggestion over "
            f"{args.timing_asks} suggestions after a random history)",
            "",
        ]
        out.append("| function | sampler | p50 | p95 |")
        out.append("|---|---|---|---|")
        for fn, pair in timing_runs.items():
            for s in ("tpe", "optuna-tpe"):
                if pair.get(s):
                    out.append(
                        f"| {fn} | {s} | {_ms(_quantile(pair[s], 0.5))} "
                        f"| {_ms(_quantile(pair[s], 0.95))} |"
                    )
        out.append("")
    out += ["**Targets**", "", "```"]
    out += targets(table, timings, timing_runs, functions, args.budgets, args.modes, at)
    out += ["```", ""]
    return "\n".join(out)


def write_readme(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else ""
    block = f"{README_START}\n{body}\n{README_END}"
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        text = head + block + rest.split(README_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Sampler benchmark\n\n" + block + "\n"
    path.write_text(text)


# ---- command line -----------------------------------------------------------------------------


def _names(text: str, known: Iterable[str], what: str) -> list[str]:
    names = [s for s in text.split(",") if s]
    unknown = [s for s in names if s not in known]
    if unknown:
        raise SystemExit(f"--{what}: unknown {', '.join(unknown)}; pick from {', '.join(known)}")
    return names


def _written(sampler: str) -> bool:
    """Whether our sampler's module exists (auto needs every other one)."""
    if sampler == "auto":
        return all(_written(s) for s in OURS if s != "auto")
    return _importable(sampler_module(sampler))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    optuna_ok = importlib.util.find_spec("optuna") is not None
    all_samplers = tuple(s for s in OURS if _written(s)) + (OPTUNA if optuna_ok else ())
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="2 seeds, budgets 10 and 20, branin and mixed6, timing at 100 trials",
    )
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    p.add_argument("--budgets", default="30,100", help="comma-separated trial budgets")
    p.add_argument("--functions", default=",".join(FUNCTIONS))
    p.add_argument("--samplers", default=",".join(all_samplers))
    p.add_argument("--modes", default=",".join(MODES), help="seq (batch 1), batch4")
    p.add_argument("--workers", type=int, default=2, help="processes; 1 runs in this process")
    p.add_argument(
        "--timing-trials",
        type=int,
        default=500,
        help="history size of the TPE timing run (0 skips it)",
    )
    p.add_argument("--timing-asks", type=int, default=20)
    p.add_argument("--cache", type=Path, help="default benchmarks/results/samplers-runs.json")
    p.add_argument("--out", type=Path, help="default benchmarks/results/samplers.md")
    p.add_argument("--readme", action="store_true", help="also write the tables into README.md")
    p.add_argument("--report-only", action="store_true", help="score the cache, run nothing")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0,
        help="stop starting runs after this long (the cache keeps finished ones)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.budgets = 2, "10,20"
        if args.functions == ",".join(FUNCTIONS):
            args.functions = "branin,mixed6"
        args.timing_trials = min(args.timing_trials, 100)
    suffix = "-quick" if args.quick else ""
    args.cache = args.cache or HERE / "results" / f"samplers{suffix}-runs.json"
    args.out = args.out or HERE / "results" / f"samplers{suffix}.md"
    args.seed_list = list(range(args.seeds))
    args.budgets = sorted(int(b) for b in args.budgets.split(","))
    args.functions = _names(args.functions, FUNCTIONS, "functions")
    args.samplers = _names(args.samplers, all_samplers, "samplers")
    args.modes = _names(args.modes, MODES, "modes")
    return args


def plan_tasks(args: argparse.Namespace) -> list[dict]:
    tasks = [
        {
            "kind": "run",
            "function": fn,
            "sampler": s,
            "mode": m,
            "seed": seed,
            "budget": args.budgets[-1],
        }
        for fn in args.functions
        for s in args.samplers
        for m in args.modes
        for seed in args.seed_list
    ]
    if args.timing_trials:
        tasks += [
            {
                "kind": "timing",
                "function": fn,
                "sampler": s,
                "trials": args.timing_trials,
                "asks": args.timing_asks,
                "seed": 0,
            }
            for fn in TIMING_FUNCTIONS
            for s in ("tpe", "optuna-tpe")
            if s in args.samplers
        ]
    return tasks


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prints = {s: fingerprint(s) for s in set(args.samplers)}
    cache = load_cache(args.cache)
    todo = [t for t in plan_tasks(args) if not _fresh(cache.get(task_key(t)), t, prints)]
    # The slowest first, so that the pool's two workers finish together.
    todo.sort(
        key=lambda t: -_COST.get(t["sampler"], 1) * (3 if t["function"] == "digits-svc" else 1)
    )
    if not args.report_only:
        print(f"{len(todo)} runs to do, cache {args.cache}", flush=True)
        started = time.perf_counter()

        def done(task: dict, result: dict, i: int) -> None:
            entry = {"fingerprint": prints[task["sampler"]], **result}
            if task["kind"] == "run":
                entry["budget"] = task["budget"]
            cache[task_key(task)] = entry
            save_cache(args.cache, cache)
            print(
                f"[{i}/{len(todo)} {time.perf_counter() - started:.0f}s] {task_key(task)}",
                flush=True,
            )

        run_all(todo, run_task, done, args.workers, args.max_minutes, "fork")
    body = report(args, cache, prints)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Sampler benchmark\n\n" + body)
    if args.readme:
        write_readme(ROOT / "README.md", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
