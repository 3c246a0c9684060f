"""The default sampler: picks a sampler from the space and the history, then defers to it.

Purely computational; the choice is a pure function of (space, history), so a restarted operator
chooses the same. The rule:

1. Sobol while fewer than ``startup_trials(space)`` trials have a value: a space-filling design,
   and nothing a model could learn from yet.
2. GP (``gp``) while fewer than ``GP_MAX_OBSERVED`` trials have a value and the space has at
   most ``GP_MAX_DIM`` parameters: the most sample-efficient sampler, and its cost, cubic in the
   number of trials, is still small there.
3. Beyond that, CMA-ES (``cmaes``) for spaces without categorical parameters and with at least two
   parameters, TPE (``tpe``) otherwise: both cost little per trial at any history size, TPE copes
   with categorical values and CMA-ES does better on long numeric runs.

The thresholds start from Optuna's published guidance (GP up to a few hundred trials, TPE and
CMA-ES beyond) and OptunaHub's AutoSampler (GP until 250 trials, then CMA-ES); see
benchmarks/results/samplers.md for the measurements on our own samplers.
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
    """Trials with a value before a model takes over: d + 1, between 5 and 10."""
    return min(10, max(5, space.dim + 1))


def choose_sampler(space: Space, history: History) -> str:
    """The name of the sampler that proposes next for this space and history. Pure."""
    observed = history.n_observed
    if observed < startup_trials(space):
        return "sobol"
    if observed < GP_MAX_OBSERVED and space.dim <= GP_MAX_DIM:
        return "gp"
    numeric = all(p.kind != "categorical" for p in space.params)
    return "cmaes" if numeric and space.dim >= 2 else "tpe"


class AutoSampler:
    """Sobol, then GP, then CMA-ES or TPE, by the rule in this module's docstring."""

    name = "auto"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *, minimize: bool, seed: int
    ) -> list[dict[str, Any]]:
        chosen = choose_sampler(space, history_of(space, trials, minimize=minimize))
        return get_sampler(chosen).suggest(space, trials, n, minimize=minimize, seed=seed)
