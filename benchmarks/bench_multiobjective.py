"""Multi-objective and constrained studies: kubetune's samplers against Optuna and pymoo.

    .venv/bin/python benchmarks/bench_multiobjective.py --readme     # the published run
    .venv/bin/python benchmarks/bench_multiobjective.py --smoke --out=/tmp/mo.md   # seconds

Problems, as pymoo defines them (``pymoo.problems``), every objective minimised:

- ``zdt1``, ``zdt2``, ``zdt3``: d = 6, 2 objectives; convex, concave and disconnected fronts.
- ``dtlz2``: d = 6, 3 objectives; the front is the positive octant of the unit sphere.
- ``dtlz2-4``: d = 7, 4 objectives, the same in four dimensions; not in the default set, for
  checks of the GP's scalarisations beyond three objectives (``--problems=dtlz2-4``).
- ``srn``: d = 2, 2 objectives, 2 inequality constraints that cut the unconstrained front.
  kubetune reads each constraint as a metric with a bound, as a user writes one
  (``radius2 <= 225``, ``slack <= -10``); Optuna gets ``trial.set_constraint`` (Optuna 5's
  replacement for the deprecated ``constraints_func``), pymoo its ``G <= 0``.

Samplers, all given the same float search space and seed:

- ``kt-<name>``: ``kubetune.core.samplers.get_multi_sampler(name)``, called as the operator
  calls it (``suggest(space, trials, n, objectives=..., seed=...)``), the history as Trials
  with ``values`` and ``violation``.
- ``optuna-nsga2``, ``optuna-tpe``, ``optuna-gp``: Optuna's NSGAIISampler (population
  ``--population``), TPESampler (multi-objective TPE) and GPSampler (multi-objective,
  ``deterministic_objective=True``: the problems are noiseless), through ask/tell.
- ``pymoo-nsga2``: pymoo's NSGA2 (population ``--population``) through ask/tell; it proposes a
  whole generation at once, handed out one trial (or one batch) at a time.

Protocol: a run is one sampler on one problem from one seed, ``max(--budgets)`` sequential
trials. No sampler is told the budget, so the first 50 trials of a 200-trial run are exactly
the run a 50-trial budget gives, and both budgets are scored from one run. ``--cap NAME=T``
stops a slow sampler's runs at T trials: it is then reported at the budgets up to T only.
Runs in batches of 4 at ``--batch-budget`` trials (50; 0 for none) are separate: four asked
before any is told; kubetune is asked ``n=4`` in one call, Optuna four times, and pymoo hands
out four of its generation (a batch never spans two generations).

Metric: the hypervolume of the feasible, non-dominated trials so far, against a fixed
reference point per problem, ``nadir + 0.1 (nadir - ideal)`` of the true front: 1.1 x nadir
where the ideal point is 0 (ZDT1, ZDT2, DTLZ2); elsewhere a tenth of the front's range past
the nadir, where a tenth of the nadir's value could be almost no margin (SRN's f2: nadir 2.6,
range 220). It is divided by the hypervolume of the true front (pymoo's ``pareto_front()``,
sampled densely; SRN's computed here, as pymoo's misses two pieces of it; DTLZ2's exactly,
1.1^3 - pi/6). Every hypervolume is pymoo's exact one
(``pymoo.indicators.hv.HV``), the same code for every sampler. Reported per problem and
budget: the mean normalised hypervolume per sampler; kt-auto's wins, ties and losses against
each other sampler per seed (a difference within ``TIE`` normalised hypervolume is a tie);
the trials each sampler takes to reach 95% of the best-known hypervolume; and the seconds
each sampler spends per suggestion (its ask and tell, without the function).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: one core per worker

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import ROOT, markdown, publish  # noqa: E402

__all__ = [
    "PROBLEMS",
    "SAMPLERS",
    "Problem",
    "hv_curve",
    "hypervolume",
    "main",
    "trials_to_reach",
    "win_tie_loss",
]

RESULTS = ROOT / "benchmarks" / "results" / "multiobjective.md"
MARK = ("<!-- bench:multiobjective:start -->", "<!-- bench:multiobjective:end -->")
AUTO = "kt-auto"
OURS = ("kt-auto", "kt-gp", "kt-tpe", "kt-nsga2", "kt-random")
PEERS = ("optuna-nsga2", "optuna-tpe", "optuna-gp", "pymoo-nsga2")
SAMPLERS = OURS + PEERS
TIE = 0.005  # normalised hypervolume: a smaller difference between two runs is a tie
REACH = 0.95  # "reached": this fraction of the best-known hypervolume
BATCH = 4
# The module each peer needs, to name the ones that cannot run here.
_NEEDS = {"optuna-nsga2": "optuna", "optuna-tpe": "optuna", "optuna-gp": "optuna",
          "pymoo-nsga2": "pymoo"}
# Rough seconds per trial here, to start the slow runs first.
_COST = {"optuna-gp": 1.5, "kt-gp": 0.1, "kt-auto": 0.03, "optuna-tpe": 0.02}
# Optuna's GPSampler takes 1 to 4 s per suggestion past 100 trials here (3 s on SRN, 0.6 s on
# ZDT1): 200-trial runs of it would take most of the run's time.
DEFAULT_CAP = ("optuna-gp=50",)


# ---- problems ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A test problem: pymoo's definition, its true front's hypervolume and the reference point.

    ``constraints``: per pymoo constraint column ``g`` (feasible at ``g <= 0``), the kubetune
    metric ``g + bound`` and its bound, so that kubetune sees ``metric <= bound``.
    """

    name: str
    pymoo: Any
    ideal: np.ndarray
    nadir: np.ndarray
    best_hv: float
    constraints: tuple[tuple[str, float], ...] = ()

    @property
    def n_var(self) -> int:
        return int(self.pymoo.n_var)

    @property
    def n_obj(self) -> int:
        return int(self.pymoo.n_obj)

    @property
    def ref(self) -> np.ndarray:
        """The hypervolume's reference point: a tenth of the front's range past its nadir."""
        return np.asarray(self.nadir + 0.1 * (self.nadir - self.ideal), dtype=float)

    @property
    def search_space(self) -> dict[str, dict[str, Any]]:
        """The TuningStudy ``searchSpace``: one float per variable, pymoo's bounds."""
        xl, xu = np.broadcast_to(self.pymoo.xl, self.n_var), np.broadcast_to(self.pymoo.xu,
                                                                             self.n_var)
        return {f"x{i}": {"type": "float", "low": float(lo), "high": float(hi)}
                for i, (lo, hi) in enumerate(zip(xl, xu, strict=True))}

    def evaluate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objectives (rows of ``n_obj``) and constraints (``g <= 0`` feasible) of rows ``x``."""
        keys = ["F", "G"] if self.constraints else ["F"]
        out = self.pymoo.evaluate(np.atleast_2d(x), return_values_of=keys)
        f = np.asarray(out[0] if self.constraints else out, dtype=float)
        g = (np.asarray(out[1], dtype=float) if self.constraints
             else np.zeros((len(f), 0)))
        return f, g


def _front_box(front: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return front.min(axis=0), front.max(axis=0)


def _dense_2d(name: str, pymoo: Any, front: np.ndarray,
              constraints: tuple[tuple[str, float], ...] = ()) -> Problem:
    ideal, nadir = _front_box(front)
    problem = Problem(name, pymoo, ideal, nadir, 0.0, constraints)
    return Problem(name, pymoo, ideal, nadir, hypervolume(front, problem.ref), constraints)


def _nondominated_2d(f: np.ndarray) -> np.ndarray:
    """The rows of ``f`` (2 objectives, minimised) that no other row dominates."""
    f = f[np.lexsort((f[:, 1], f[:, 0]))]
    before = np.concatenate([[np.inf], np.minimum.accumulate(f[:-1, 1])])
    return f[f[:, 1] < before]


def _srn_front(pymoo: Any, n: int) -> np.ndarray:
    """SRN's true front. pymoo's ``pareto_front()`` is the literature's segment x0 = -2.5,
    which misses two pieces: the g2 = 0 line from (1.1, 3.7) to (-2.5, 2.5), and the g1 = 0
    circle from (-2.5, 14.79) to about (-4.84, 14.20); random feasible points beat its
    hypervolume by 0.7%. Here: the non-dominated points of that segment and both constraint
    boundaries, each sampled densely (nudged inside by 1e-9 so that they are feasible)."""
    t = np.linspace(0.5 * math.pi, math.pi, n)
    arc = (15.0 - 1e-9) * np.column_stack([np.cos(t), np.sin(t)])
    second = np.linspace(2.5, 3.7, n)
    line = np.column_stack([3.0 * second - 10.0 - 1e-9, second])
    segment = pymoo.pareto_set(n_points=n)
    f, g = pymoo.evaluate(np.vstack([arc, line, segment]), return_values_of=["F", "G"])
    return _nondominated_2d(f[np.all(g <= 0.0, axis=1)])


def build(name: str) -> Problem:
    """Problem ``name``, with its true front's hypervolume (a dense sample of a 2-objective
    front, exact within 1e-4; DTLZ2's exactly)."""
    from pymoo.problems import get_problem

    dense = 20_000
    if name in ("zdt1", "zdt2"):
        pymoo = get_problem(name, n_var=6)
        return _dense_2d(name, pymoo, pymoo.pareto_front(n_pareto_points=dense, use_cache=False))
    if name == "zdt3":
        pymoo = get_problem(name, n_var=6)
        return _dense_2d(name, pymoo, pymoo.pareto_front(n_points=dense, use_cache=False))
    if name == "dtlz2":
        pymoo = get_problem(name, n_var=6, n_obj=3)
        ideal, nadir = np.zeros(3), np.ones(3)
        # The region of [0, 1.1]^3 that the unit sphere's octant does not cover.
        return Problem(name, pymoo, ideal, nadir, 1.1**3 - math.pi / 6)
    if name == "dtlz2-4":
        pymoo = get_problem("dtlz2", n_var=7, n_obj=4)
        ideal, nadir = np.zeros(4), np.ones(4)
        # The unit 4-ball's volume is pi^2 / 2, a sixteenth of it in the positive orthant.
        return Problem(name, pymoo, ideal, nadir, 1.1**4 - math.pi**2 / 32)
    if name == "srn":
        pymoo = get_problem(name)
        # g1 = x0^2 + x1^2 - 225 and g2 = x0 - 3 x1 + 10.
        constraints = (("radius2", 225.0), ("slack", -10.0))
        return _dense_2d(name, pymoo, _srn_front(pymoo, dense), constraints)
    raise ValueError(f"unknown problem {name!r}; use one of {', '.join(KNOWN_PROBLEMS)}")


PROBLEMS = ("zdt1", "zdt2", "zdt3", "dtlz2", "srn")  # the default set, the published run's
KNOWN_PROBLEMS = (*PROBLEMS, "dtlz2-4")


# ---- hypervolume ------------------------------------------------------------------------------


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """pymoo's exact hypervolume of ``points`` (minimised) against ``ref``; points that do not
    dominate ``ref`` add nothing."""
    from pymoo.indicators.hv import HV

    inside = points[np.all(points < ref, axis=1)] if len(points) else points
    return float(HV(ref_point=ref)(inside)) if len(inside) else 0.0


def _dominated(y: np.ndarray, front: list[np.ndarray]) -> bool:
    return any(bool(np.all(f <= y)) for f in front)


def hv_curve(f: np.ndarray, feasible: np.ndarray, problem: Problem) -> np.ndarray:
    """The normalised hypervolume after each trial: of the feasible, non-dominated trials so
    far, divided by the true front's. Recomputed only when a trial changes that set."""
    ref, out = problem.ref, np.zeros(len(f))
    front: list[np.ndarray] = []
    current = 0.0
    for i, (y, ok) in enumerate(zip(f, feasible, strict=True)):
        if ok and np.all(y < ref) and not _dominated(y, front):
            front = [p for p in front if not np.all(y <= p)] + [y]
            current = hypervolume(np.array(front), ref) / problem.best_hv
        out[i] = current
    return out


def trials_to_reach(curve: np.ndarray, fraction: float = REACH) -> int | None:
    """The first trial count at which ``curve`` reaches ``fraction``, or None."""
    hit = np.flatnonzero(curve >= fraction)
    return int(hit[0]) + 1 if len(hit) else None


# ---- samplers ---------------------------------------------------------------------------------


class Optimizer(Protocol):
    """One run's sampler: ``ask(k)`` proposes up to ``k`` points (all pending until told),
    ``tell`` takes their objectives ``f`` and constraints ``g`` (feasible at ``g <= 0``)."""

    def ask(self, k: int) -> list[np.ndarray]: ...

    def tell(self, xs: Sequence[np.ndarray], f: np.ndarray, g: np.ndarray) -> None: ...


def available(names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The samplers that can run here, and why each other one cannot (a kubetune sampler whose
    module is missing, a peer whose package is not installed)."""
    import importlib

    ok, missing = [], {}
    for name in names:
        try:
            if name.startswith("kt-"):
                from kubetune.core.samplers import get_multi_sampler

                get_multi_sampler(name[3:])
            else:
                importlib.import_module(_NEEDS[name])
            ok.append(name)
        except Exception as exc:  # reported in the results, never silently dropped
            missing[name] = f"{type(exc).__name__}: {exc}"
    return ok, missing


def make(name: str, problem: Problem, seed: int, population: int) -> Optimizer:
    """A fresh optimizer ``name`` for one run."""
    if name.startswith("kt-"):
        return _Kubetune(name[3:], problem, seed)
    if name.startswith("optuna-"):
        return _Optuna(name, problem, seed, population)
    if name == "pymoo-nsga2":
        return _Pymoo(problem, seed, population)
    raise ValueError(f"unknown sampler {name!r}; use some of {', '.join(SAMPLERS)}")


class _Kubetune:
    def __init__(self, name: str, problem: Problem, seed: int) -> None:
        from kubetune.core.objectives import Constraint, Objective
        from kubetune.core.samplers import get_multi_sampler
        from kubetune.core.space import Space

        self.sampler = get_multi_sampler(name)
        self.space = Space.from_search_space(problem.search_space)
        self.objectives = tuple(Objective(f"f{i}", True) for i in range(problem.n_obj))
        self.constraints = tuple(Constraint(m, max=bound) for m, bound in problem.constraints)
        self.bounds = problem.constraints
        self.seed = seed
        self.n_var = problem.n_var
        self.trials: list[Any] = []
        self.pending: list[dict[str, Any]] = []

    def ask(self, k: int) -> list[np.ndarray]:
        out = self.sampler.suggest(self.space, tuple(self.trials), k,
                                   objectives=self.objectives, seed=self.seed)
        self.pending += out
        return [np.array([float(p[f"x{i}"]) for i in range(self.n_var)]) for p in out]

    def tell(self, xs: Sequence[np.ndarray], f: np.ndarray, g: np.ndarray) -> None:
        from kubetune.core.objectives import violation
        from kubetune.core.trials import Trial, TrialState

        for row_f, row_g in zip(f, g, strict=True):
            values = {f"f{i}": float(v) for i, v in enumerate(row_f)}
            values |= {m: float(v) + bound for (m, bound), v in zip(self.bounds, row_g,
                                                                     strict=True)}
            self.trials.append(Trial(
                len(self.trials), self.pending.pop(0), TrialState.SUCCEEDED,
                value=float(row_f[0]), values=values,
                violation=violation(values, self.constraints),
            ))


class _Optuna:
    def __init__(self, name: str, problem: Problem, seed: int, population: int) -> None:
        import optuna
        from optuna.distributions import BaseDistribution, FloatDistribution

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        samplers = optuna.samplers
        if name == "optuna-gp":
            import torch

            torch.set_num_threads(1)
        sampler = {
            "optuna-nsga2": lambda: samplers.NSGAIISampler(population_size=population, seed=seed),
            "optuna-tpe": lambda: samplers.TPESampler(seed=seed),
            "optuna-gp": lambda: samplers.GPSampler(seed=seed, deterministic_objective=True),
        }[name]()
        self.study = optuna.create_study(directions=["minimize"] * problem.n_obj,
                                         sampler=sampler)
        self.dists: dict[str, BaseDistribution] = {
            f"x{i}": FloatDistribution(p["low"], p["high"])
            for i, p in enumerate(problem.search_space.values())
        }
        self.asked: list[Any] = []

    def ask(self, k: int) -> list[np.ndarray]:
        out = []
        for _ in range(k):
            trial = self.study.ask(self.dists)
            self.asked.append(trial)
            out.append(np.array([trial.params[name] for name in self.dists]))
        return out

    def tell(self, xs: Sequence[np.ndarray], f: np.ndarray, g: np.ndarray) -> None:
        for row_f, row_g in zip(f, g, strict=True):
            trial = self.asked.pop(0)
            for j, v in enumerate(row_g):
                trial.set_constraint(f"g{j}", float(v))
            self.study.tell(trial, [float(v) for v in row_f])


class _Pymoo:
    def __init__(self, problem: Problem, seed: int, population: int) -> None:
        from pymoo.algorithms.moo.nsga2 import NSGA2

        self.problem = problem
        self.algorithm = NSGA2(pop_size=population)
        self.algorithm.setup(problem.pymoo, seed=seed, verbose=False)
        self.generation: Any = None
        self.handed = 0
        self.f: list[np.ndarray] = []
        self.g: list[np.ndarray] = []

    def ask(self, k: int) -> list[np.ndarray]:
        """Up to ``k`` of the current generation, asking pymoo for the next one once this one
        is handed out and told: a batch never spans two generations, so it may be short."""
        if self.generation is None or self.handed == len(self.generation):
            self.generation, self.handed = self.algorithm.ask(), 0
            self.f, self.g = [], []
        out = [np.array(ind.X, dtype=float)
               for ind in self.generation[self.handed:self.handed + k]]
        self.handed += len(out)
        return out

    def tell(self, xs: Sequence[np.ndarray], f: np.ndarray, g: np.ndarray) -> None:
        from pymoo.core.evaluator import Evaluator
        from pymoo.problems.static import StaticProblem

        self.f += list(f)
        self.g += list(g)
        if len(self.f) == len(self.generation):
            extra = {"G": np.array(self.g)} if self.problem.constraints else {}
            static = StaticProblem(self.problem.pymoo, F=np.array(self.f), **extra)
            Evaluator().eval(static, self.generation)
            self.algorithm.tell(infills=self.generation)


# ---- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One run: ``trials`` trials of ``sampler`` on ``problem`` from ``seed``, ``batch`` at a
    time."""

    problem: str
    sampler: str
    seed: int
    trials: int
    batch: int
    population: int

    @property
    def mode(self) -> str:
        return "seq" if self.batch == 1 else f"q{self.batch}"


@dataclass(frozen=True)
class Run:
    """A finished run: the normalised hypervolume after each trial and the seconds the sampler
    spent on each (its ask and tell per trial), or the error that stopped it."""

    task: Task
    curve: np.ndarray
    seconds: np.ndarray
    error: str = ""


_PROBLEM_CACHE: dict[str, Problem] = {}


def _problem(name: str) -> Problem:
    if name not in _PROBLEM_CACHE:
        _PROBLEM_CACHE[name] = build(name)
    return _PROBLEM_CACHE[name]


def run(task: Task) -> Run:
    """Run one task; an exception is reported in the results rather than lose the others."""
    try:
        return _run(task)
    except Exception as exc:
        return Run(task, np.zeros(0), np.zeros(0), f"{type(exc).__name__}: {exc}")


def _run(task: Task) -> Run:
    problem = _problem(task.problem)
    opt = make(task.sampler, problem, task.seed, task.population)
    fs: list[np.ndarray] = []
    gs: list[np.ndarray] = []
    seconds: list[float] = []
    while len(fs) < task.trials:
        start = time.perf_counter()
        xs = opt.ask(min(task.batch, task.trials - len(fs)))
        asked = time.perf_counter() - start
        k = len(xs)
        f, g = problem.evaluate(np.array(xs))
        start = time.perf_counter()
        opt.tell(xs, f, g)
        told = time.perf_counter() - start
        fs += list(f)
        gs += list(g)
        seconds += [(asked + told) / k] * k
    f_all, g_all = np.array(fs), np.array(gs).reshape(len(fs), -1)
    feasible = np.all(g_all <= 0.0, axis=1)
    return Run(task, hv_curve(f_all, feasible, problem), np.array(seconds))


def run_all(tasks: Sequence[Task], workers: int,
            done: Callable[[Run, int], None]) -> list[Run]:
    """Every task, in this process (``workers`` <= 1) or a pool, slowest first."""
    order = sorted(tasks, key=lambda t: -_COST.get(t.sampler, 0.005) * t.trials)
    runs = []
    if workers <= 1:
        for i, task in enumerate(order, 1):
            runs.append(run(task))
            done(runs[-1], i)
        return runs
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(run, t) for t in order]
        for i, future in enumerate(as_completed(futures), 1):
            runs.append(future.result())
            done(runs[-1], i)
    return runs


# ---- scoring ----------------------------------------------------------------------------------


def win_tie_loss(ours: Sequence[float], theirs: Sequence[float],
                 tie: float = TIE) -> tuple[int, int, int]:
    """Per seed: (wins, ties, losses) of ``ours`` against ``theirs``, higher being better; a
    difference within ``tie`` is a tie."""
    w = t = lo = 0
    for a, b in zip(ours, theirs, strict=True):
        if abs(a - b) <= tie:
            t += 1
        elif a > b:
            w += 1
        else:
            lo += 1
    return w, t, lo


Scores = dict[tuple[str, int], dict[str, dict[str, list[float]]]]


def score(runs: Sequence[Run], budgets: Sequence[int]) -> Scores:
    """{(mode, budget): {problem: {sampler: [normalised hypervolume per seed, seed order]}}}:
    a run counts at every budget it reached."""
    out: Scores = {}
    for r in sorted(runs, key=lambda r: r.task.seed):
        if r.error:
            continue
        for b in budgets:
            if len(r.curve) >= b:
                cell = out.setdefault((r.task.mode, b), {}).setdefault(r.task.problem, {})
                cell.setdefault(r.task.sampler, []).append(float(r.curve[b - 1]))
    return out


def _fmt_reach(counts: Sequence[int | None]) -> str:
    """The median trials to reach, a seed that never reached counting as infinitely many, and
    how many seeds reached."""
    reached = [c for c in counts if c is not None]
    median = float(np.median([math.inf if c is None else c for c in counts]))
    shown = f"{median:.0f}" if math.isfinite(median) else "-"
    return f"{shown} ({len(reached)}/{len(counts)})"


def _ms(seconds: float) -> str:
    ms = 1000.0 * seconds
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def report(runs: Sequence[Run], args: argparse.Namespace) -> str:
    """The results file's text: setup, per-budget tables, speed, targets."""
    names: list[str] = args.samplers
    sections = [("seq", b) for b in args.budgets]
    if args.batch_budget:
        sections.append((f"q{BATCH}", args.batch_budget))
    table = score(runs, sorted(set(args.budgets) | {args.batch_budget} - {0}))
    caps = {n: t for n, t in args.cap.items() if n in names}
    out = [
        f"Problems: {', '.join(_describe(p) for p in args.problems)}. {args.seeds} seeds; "
        f"sequential runs of {max(args.budgets)} trials scored at "
        f"{' and '.join(map(str, args.budgets))} (no sampler is told the budget, so a run's "
        "first trials are the shorter budget's run)"
        + (f"; separate runs in batches of {BATCH} at {args.batch_budget} trials"
           if args.batch_budget else "")
        + f". NSGA-II population: {args.population} for Optuna's and pymoo's, kubetune's "
        f"nsga2 its own ({_kubetune_population()}). "
        "Normalised hypervolume: the hypervolume of the feasible non-dominated trials against "
        "nadir + 0.1 (nadir - ideal) of the true front, divided by the true front's; 1 is the "
        f"best known, higher is better; the best mean per row is bold, and a mean within "
        f"{TIE} of it is bold too. W/T/L: kt-auto against the sampler, per seed; a difference "
        f"within {TIE} normalised hypervolume is a tie.",
    ]
    if caps:
        out.append("Capped (too slow for the session at the larger budget): "
                   + ", ".join(f"{n} at {t} trials" for n, t in caps.items())
                   + "; a '-' marks the budgets it did not reach.")
    if args.missing:
        out.append("Not run: " + "; ".join(f"{n} ({why})" for n, why in args.missing.items())
                   + ".")
    failed = [f"{r.task.problem} {r.task.sampler} {r.task.mode} seed {r.task.seed}: {r.error}"
              for r in runs if r.error]
    if failed:
        out.append("Runs that failed (left out of the means): " + "; ".join(failed) + ".")
    out.append("")
    targets: list[str] = []
    for mode, budget in sections:
        rows = table.get((mode, budget), {})
        title = f"{budget} trials, " + ("sequential" if mode == "seq" else f"batches of {BATCH}")
        out += [f"**{title}: mean normalised hypervolume**", ""]
        body = []
        for problem in args.problems:
            cell = rows.get(problem, {})
            means = {n: float(np.mean(cell[n])) for n in names
                     if len(cell.get(n, [])) == args.seeds}
            best = max(means.values(), default=math.nan)
            body.append([problem] + [
                "-" if n not in means else
                (f"**{means[n]:.3f}**" if means[n] >= best - TIE else f"{means[n]:.3f}")
                for n in names])
            if mode == "seq" and budget == min(args.budgets):
                targets.append(_target(problem, title, means))
        out += [markdown(["problem", *names], body), ""]
        if AUTO in names:
            others = [n for n in names if n != AUTO]
            out += [f"**{title}: kt-auto W/T/L per seed**", ""]
            body = []
            for problem in args.problems:
                cell = rows.get(problem, {})
                complete = len(cell.get(AUTO, [])) == args.seeds
                body.append([problem] + [
                    "/".join(map(str, win_tie_loss(cell[AUTO], cell[n])))
                    if complete and len(cell.get(n, [])) == args.seeds else "-"
                    for n in others])
            out += [markdown(["problem", *[f"vs {n}" for n in others]], body), ""]
        out += [f"**{title}: milliseconds per suggestion** (mean over the trials of every seed; "
                "the sampler's ask and tell, without the function)", ""]
        body = []
        for problem in args.problems:
            row = [problem]
            for n in names:
                got = [r.seconds[:budget] for r in runs
                       if (r.task.problem, r.task.sampler, r.task.mode) == (problem, n, mode)
                       and not r.error and len(r.seconds) >= budget]
                row.append(_ms(float(np.mean(np.concatenate(got))))
                           if len(got) == args.seeds else "-")
            body.append(row)
        out += [markdown(["problem", *names], body), ""]
    out += _reach_tables(runs, args)
    out += [f"**Target** (kt-auto: the best mean normalised hypervolume at "
            f"{min(args.budgets)} sequential trials, more than {TIE} above every peer)", "",
            "```", *targets, "```"]
    return "\n".join(out)


def _kubetune_population() -> str:
    try:
        from kubetune.core.samplers.nsga2 import POPULATION_SIZE

        return str(POPULATION_SIZE)
    except ImportError:
        return "not installed"


def _describe(name: str) -> str:
    p = _problem(name)
    extra = f", {len(p.constraints)} constraints" if p.constraints else ""
    return f"{name} (d = {p.n_var}, {p.n_obj} objectives{extra})"


def _target(problem: str, title: str, means: Mapping[str, float]) -> str:
    if AUTO not in means:
        return f"MISS {problem} {title}: no complete kt-auto data"
    peers = {n: m for n, m in means.items() if n in PEERS}
    if not peers:
        return f"MISS {problem} {title}: no complete peer data"
    best_peer = max(peers, key=lambda n: peers[n])
    gap = means[AUTO] - peers[best_peer]
    verdict = "PASS" if gap > TIE else "MISS"
    how = "best" if gap > TIE else ("tied with the best peer" if gap >= -TIE else "not best")
    ours = [n for n, m in means.items() if n in OURS and n != AUTO and m > means[AUTO] + TIE]
    return (f"{verdict} {problem} {title}: kt-auto {how} ({means[AUTO]:.3f} vs {best_peer} "
            f"{peers[best_peer]:.3f}, {gap:+.3f})"
            + (f"; kubetune's {', '.join(ours)} higher" if ours else ""))


def _reach_tables(runs: Sequence[Run], args: argparse.Namespace) -> list[str]:
    modes = [("seq", max(args.budgets))]
    if args.batch_budget:
        modes.append((f"q{BATCH}", args.batch_budget))
    out = []
    for mode, budget in modes:
        out += [f"**Trials to {REACH:.0%} of the best-known hypervolume** ({mode}, within "
                f"{budget} trials; median over seeds, a seed that never reached it counting as "
                "never, '-' if most never did; in brackets the seeds that reached it)", ""]
        body = []
        for problem in args.problems:
            row = [problem]
            for n in args.samplers:
                got = [r for r in runs if r.task.problem == problem and r.task.sampler == n
                       and r.task.mode == mode and not r.error and len(r.curve) >= budget]
                row.append(_fmt_reach([trials_to_reach(r.curve[:budget]) for r in got])
                           if len(got) == args.seeds else "-")
            body.append(row)
        out += [markdown(["problem", *args.samplers], body), ""]
    return out


# ---- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problems", default=",".join(PROBLEMS))
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--budgets", default="50,200", help="trial counts to score at (sequential)")
    p.add_argument("--batch-budget", type=int, default=50,
                   help=f"trials of the batch-of-{BATCH} runs (0: none)")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--population", type=int, default=20, help="NSGA-II's (Optuna and pymoo)")
    p.add_argument("--cap", action="append", metavar="SAMPLER=TRIALS",
                   help="stop this sampler's sequential runs at TRIALS (a slow one); "
                   f"default {' '.join(DEFAULT_CAP)}, which a later --cap overrides")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="tiny budgets, to see it work")
    p.add_argument("--out", type=Path, help=f"results file (default {RESULTS.relative_to(ROOT)})")
    p.add_argument("--readme", action="store_true", help="write the tables into README.md")
    args = p.parse_args(argv)
    if args.smoke:
        args.budgets, args.batch_budget, args.seeds, args.population = "6,12", 8, 2, 4
        args.samplers = "kt-auto,kt-random,optuna-tpe,pymoo-nsga2"
    args.problems = [x for x in args.problems.split(",") if x]
    unknown = set(args.problems) - set(KNOWN_PROBLEMS)
    if unknown:
        raise SystemExit(f"--problems: unknown {', '.join(sorted(unknown))}")
    wanted = [x for x in args.samplers.split(",") if x]
    if set(wanted) - set(SAMPLERS):
        raise SystemExit(f"--samplers: unknown {', '.join(sorted(set(wanted) - set(SAMPLERS)))}")
    args.samplers, args.missing = available(wanted)
    args.budgets = sorted({int(b) for b in args.budgets.split(",")})
    args.cap = {name: int(t) for name, _, t in
                (c.partition("=") for c in [*DEFAULT_CAP, *(args.cap or [])])}
    args.out = args.out or RESULTS
    return args


def plan(args: argparse.Namespace) -> list[Task]:
    """Every run: sequential to the largest budget (or the sampler's cap), and the batch runs."""
    tasks = []
    for problem in args.problems:
        for name in args.samplers:
            for seed in range(args.seeds):
                trials = min(max(args.budgets), args.cap.get(name, max(args.budgets)))
                tasks.append(Task(problem, name, seed, trials, 1, args.population))
                if args.batch_budget:
                    tasks.append(Task(problem, name, seed, args.batch_budget, BATCH,
                                      args.population))
    return tasks


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tasks = plan(args)
    started = time.perf_counter()
    print(f"{len(tasks)} runs, {args.workers} worker(s)", file=sys.stderr, flush=True)

    def done(r: Run, i: int) -> None:
        t = r.task
        what = r.error or f"hv {r.curve[-1]:.3f}, {r.seconds.sum():.1f} s"
        print(f"[{i}/{len(tasks)} {time.perf_counter() - started:.0f} s] {t.problem} "
              f"{t.sampler} {t.mode} seed {t.seed}: {what}", file=sys.stderr, flush=True)

    runs = run_all(tasks, args.workers, done)
    text = report(runs, args)
    text += (f"\n\nWall time {(time.perf_counter() - started) / 60:.1f} min with "
             f"{args.workers} worker(s).")
    publish(args.out, "Multi-objective and constrained studies", text, MARK, args.readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
