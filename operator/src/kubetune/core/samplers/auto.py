"""The default sampler: picks a sampler from the space and the history, then defers to it.

Purely computational; the choice is a pure function of (space, history), so a restarted operator
chooses the same. The rule:

1. GP (``gp``) while fewer than ``GP_MAX_OBSERVED`` (200) trials have a value and the space has
   at most ``GP_MAX_DIM`` (20) parameters, categorical ones included. The GP's own startup
   design (a Latin hypercube of ``gp.default_n_startup(d)`` points) is the only initial design:
   handing over from a separate Sobol start gave the first trials two unrelated designs.
2. Wider spaces: Sobol while fewer than ``startup_trials(space)`` trials have a value (d + 1,
   between 5 and 10), as nothing can be learnt before that.
3. Beyond that, CMA-ES (``cmaes``) for spaces without categorical parameters and with at least
   two parameters, TPE (``tpe``) otherwise.

Why, measured with benchmarks/bench_samplers.py (sequential, mean normalized regret: 0 is the
optimum, 1 is random search's median; raw regret where noted):

- One initial design, and the GP's trust region and posterior-mean incumbent (gp module),
  together against the previous rule (d + 1 Sobol points, then the GP with its own Latin
  hypercube on top): COCO bbob at d = 5, functions 1, 8, 10, 12, 13, 14, 15, 21, 2 seeds,
  50 trials, sequential (benchmarks/bench_peers.py), mean log10(f - f*) 1.51 -> 1.27. Gains
  on Rosenbrock (1.44 -> 1.06), ellipsoid (3.99 -> 3.85), bent cigar (6.06 -> 4.94), sharp
  ridge (2.12 -> 1.51), different powers (-0.76 -> -0.91); losses on the sphere (-2.71 ->
  -2.41) and Rastrigin (1.33 -> 1.53), where a shrinking region trades a little polish and
  exploration. The three changes were not measured apart.
- The quadratic model's step in the GP (gp module, ``_quadratic_step``), on spaces whose
  axes are all continuous: same cut with 3 seeds, 1.24 -> 0.40 sequentially and 1.05 -> 0.52
  in batches of 4; the other 16 bbob functions 0.53 -> 0.49, none worse.
- GP for categorical spaces too. Over 3 seeds, at 30 / 100 trials: mixed6 (4 numeric and 2
  categorical parameters) gp 0.071 / 0.000, tpe 0.896 / 0.330, cmaes 1.170 / 0.258, Optuna TPE
  1.751 / 0.713; digits-svc (SVC on digits, with a categorical kernel) gp 0.556 / 0.222, tpe
  1.889 / 1.222, cmaes 11.2 / 0.889, Optuna TPE 0.667 / 0.444.
- Hand over after 200 trials. Over 2 seeds, raw regret at 200 -> 300 trials, GP then CMA-ES
  against GP all along: rosenbrock8 54 -> 13 and 47 -> 16 against 127 -> 24 and 150 -> 123;
  levy4 1e-3 -> 4e-5 and 2e-4 -> 4e-7 against 2e-4 -> 1e-4 and 7e-3 -> 1e-3; hartmann6 3e-5 ->
  1e-5 and 2e-5 -> 6e-6 against 0.185 -> 0.185 (stuck) and 1e-4 -> 2e-5. Only the multimodal
  ackley10 gained a little more from the GP (3.24 -> 2.85 and 3.43 -> 2.97 against 3.39 -> 3.39
  and 3.67 -> 3.10). CMA-ES refines a basin that the GP found; the GP keeps exploring.
- Cost. GP p50 per suggestion after 200 / 300 / 500 trials: 137 / 328 / 326 ms on hartmann6,
  247 / 634 / 642 ms on mixed6 (its training set is capped at 300); TPE and CMA-ES stay under
  20 ms at 500 trials.
- ``GP_MAX_DIM`` is not measured here (no benchmark function has more than 10 parameters); it
  follows Optuna's guidance and the literature that plain GP-BO loses its edge beyond ~20
  dimensions. Nor is the choice of TPE over CMA-ES for categorical spaces beyond 200 trials
  (mixed6 was at its optimum by then with either): CMA-ES treats a categorical as an ordered
  axis, TPE does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubetune.core.samplers import get_sampler
from kubetune.core.samplers.base import History, history_of
from kubetune.core.space import Space
from kubetune.core.trials import Trial

__all__ = ["GP_MAX_DIM", "GP_MAX_OBSERVED", "AutoSampler", "choose_sampler", "startup_trials"]

GP_MAX_OBSERVED = 200
GP_MAX_DIM = 20


def startup_trials(space: Space) -> int:
    """Trials with a value before CMA-ES or TPE takes over a wide space: d + 1, in [5, 10]."""
    return min(10, max(5, space.dim + 1))


def choose_sampler(space: Space, history: History) -> str:
    """The name of the sampler that proposes next for this space and history. Pure."""
    observed = history.n_observed
    if observed < GP_MAX_OBSERVED and space.dim <= GP_MAX_DIM:
        return "gp"
    if observed < startup_trials(space):
        return "sobol"
    numeric = all(p.kind != "categorical" for p in space.params)
    return "cmaes" if numeric and space.dim >= 2 else "tpe"


class AutoSampler:
    """GP (or Sobol in wide spaces), then CMA-ES or TPE, by the rule in this module's docstring."""

    name = "auto"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *, minimize: bool, seed: int
    ) -> list[dict[str, Any]]:
        chosen = choose_sampler(space, history_of(space, trials, minimize=minimize))
        return get_sampler(chosen).suggest(space, trials, n, minimize=minimize, seed=seed)
