"""MOTPE: TPE for several objectives (Ozaki et al., GECCO 2020 and JAIR 2022), the ``tpe``
sampler of a study with ``spec.objectives``, as Optuna's TPESampler runs a multi-objective study.

Purely computational: ``MOTPESampler.suggest`` is a pure function of (space, trials, n,
objectives, seed); its draws come from ``rng_for(seed, trials)``. It differs from ``tpe`` only
in how it splits the history and weighs the good group; the rest is ``tpe``'s own code
(``tpe.propose_batch``) and defaults. Per call:

1. Until ``tpe.N_STARTUP_TRIALS`` (10) trials have finished (with every objective, or failed),
   uniform random.
2. ``split``: the good group holds ``min(ceil(0.1 n), 25)`` of the n observed trials (TPE's
   gamma). Feasible trials fill it by non-dominated rank, whole ranks first; the rank that does
   not fit whole is cut greedily for hypervolume (``pareto.select_by_hypervolume``, reference
   point from that rank's own points), as Optuna cuts it, so the part taken spreads along the
   front instead of following trial order. Infeasible trials are bad while any trial is
   feasible; while none is, the least violating lead, as in ``tpe``, so that the search heads
   for feasibility rather than away from every trial.
3. l(x) is the Parzen estimator of the good group, each kernel weighted by its trial's share of
   the good group's hypervolume (its exclusive contribution over the largest one, at least
   1e-12), as Optuna's MOTPE does: points at the edges and in the gaps of the front lead,
   dominated ones barely count. g(x) is that of the bad group, failed trials, pending ones
   (the constant liar) and the batch so far.
4. Each proposal is the candidate from l(x) with the best l(x) / g(x) that no trial holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from kubetune.core import pareto
from kubetune.core.objectives import Objective
from kubetune.core.samplers import _parzen
from kubetune.core.samplers.base import multi_history_of, rng_for
from kubetune.core.samplers.tpe import (
    N_STARTUP_TRIALS,
    PRIOR_WEIGHT,
    propose_batch,
    unused_uniform,
)
from kubetune.core.space import Space
from kubetune.core.trials import Trial, as_trials

__all__ = ["MOTPESampler", "good_weights", "split"]

# Optuna's floor for a kernel's weight: a dominated good point keeps a trace of a kernel.
_MIN_WEIGHT = 1e-12


def split(y: np.ndarray, violation: np.ndarray, n_good: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (ascending) of the good and the bad group of objective matrix ``y`` (lower is
    better), given each row's constraint ``violation`` (0: feasible). Pure.

    Feasible rows fill the ``n_good`` places by non-dominated rank; the rank that does not fit
    whole gives its greedy hypervolume subset. Infeasible rows are good only while no row is
    feasible, the least violating first (ties: the earlier row).
    """
    n = len(y)
    n_good = max(0, min(n_good, n))
    feasible = np.flatnonzero(violation <= 0.0)
    if len(feasible) == 0:
        good = np.sort(np.lexsort((np.arange(n), violation))[:n_good])
    else:
        n_good = min(n_good, len(feasible))
        ranks = pareto.nondominated_ranks(y[feasible])
        whole = int(np.searchsorted(np.cumsum(np.bincount(ranks)), n_good, side="right"))
        good = feasible[ranks < whole]
        if len(good) < n_good:
            tied = feasible[ranks == whole]
            cut = pareto.select_by_hypervolume(
                y[tied], n_good - len(good), pareto.reference_point(y[tied])
            )
            good = np.sort(np.concatenate([good, tied[cut]]))
    return good, np.setdiff1d(np.arange(n), good)


def good_weights(y: np.ndarray) -> np.ndarray:
    """Kernel weights of the good group's rows of ``y``: each row's exclusive hypervolume over
    the largest one, floored at 1e-12 (all 1 for fewer than two rows). Pure."""
    if len(y) < 2:
        return np.ones(len(y))
    contributions = pareto.hypervolume_contributions(y, pareto.reference_point(y))
    top = float(contributions.max())
    if top <= 0.0:
        return np.ones(len(y))
    return np.maximum(contributions / top, _MIN_WEIGHT)


class MOTPESampler:
    """MOTPE with a constant liar (see the module docstring)."""

    name = "tpe"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *,
        objectives: Sequence[Objective], seed: int,
    ) -> list[dict[str, Any]]:
        """``n`` new parameter dicts. Pure: the same arguments give the same proposals."""
        if n < 0:
            raise ValueError(f"MOTPESampler.suggest: n={n!r} is negative; pass a count >= 0")
        if n == 0:
            return []
        if space.dim == 0:
            return [{} for _ in range(n)]
        trials = as_trials(trials)
        history = multi_history_of(space, trials, objectives)
        rng = rng_for(seed, trials)
        taken = set(history.seen)
        if history.n_observed + len(history.failed) < N_STARTUP_TRIALS:
            return [unused_uniform(space, taken, rng) for _ in range(n)]

        good, bad = split(history.y, history.violation,
                          _parzen.default_gamma(history.n_observed))
        below = _parzen.build_estimator(
            _parzen.Axes.of(space), history.x[good], prior_weight=PRIOR_WEIGHT
        )
        if history.feasible[good].all():
            weights = np.append(good_weights(history.y[good]), PRIOR_WEIGHT)
            below = dataclasses.replace(below, weights=weights / weights.sum())
        # Older observed trials first, then failed and pending ones: the newest count fully.
        bad_points = [history.x[bad], history.failed, history.pending]
        return propose_batch(space, below, bad_points, n, taken, rng)
