"""Tree-structured Parzen Estimator: multivariate TPE with a constant liar, as Optuna 5 runs it.

Purely computational: ``TPESampler.suggest`` is a pure function of (space, trials, n, direction,
seed); its draws come from ``rng_for(seed, trials)``.

Per proposal:

1. Until ``N_STARTUP_TRIALS`` (10) trials have finished (with a value or failed), uniform random.
2. Otherwise the observed trials are split by value: the best ``min(ceil(0.1 n), 25)`` make the
   good group, the rest the bad group. Failed trials and pending ones (Pending and Running: the
   constant liar) join the bad group, so proposals move away from them. Trials that broke a
   constraint are bad too, and the good group holds feasible ones only (while none is feasible,
   the least violating).
3. Each group gets a Parzen estimator (``_parzen``): l(x) for the good, g(x) for the bad.
4. ``N_EI_CANDIDATES`` (24) points are drawn from l(x); the one with the largest l(x) / g(x) (the
   expected-improvement criterion of TPE) that no trial holds yet is proposed.

For a batch, each proposal joins the pending points before the next is chosen, so a batch spreads
out. Where Optuna ignores failed trials, we count them as bad: a region that crashes the trainer
is worth avoiding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kubetune.core.samplers import _parzen
from kubetune.core.samplers.base import history_of, rng_for
from kubetune.core.samplers.random import fill_unseen
from kubetune.core.space import Space
from kubetune.core.trials import Trial, as_trials

__all__ = [
    "CANDIDATE_ROUNDS",
    "N_EI_CANDIDATES",
    "N_STARTUP_TRIALS",
    "PRIOR_WEIGHT",
    "TPESampler",
    "propose_batch",
    "unused_uniform",
]

# Rounds of candidates drawn from l(x) before a proposal falls back to an unused random point;
# only a nearly full discrete space gets past the first round.
CANDIDATE_ROUNDS = 4
# Uniform draws tried per startup proposal before enumerating the unused configurations.
_RANDOM_TRIES = 64
# Optuna 5.0's defaults; no spec field sets them (MOTPE shares them).
N_STARTUP_TRIALS = 10
N_EI_CANDIDATES = 24
PRIOR_WEIGHT = 1.0


class TPESampler:
    """Multivariate TPE with a constant liar (see the module docstring)."""

    name = "tpe"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *, minimize: bool, seed: int
    ) -> list[dict[str, Any]]:
        """``n`` new parameter dicts. Pure: the same arguments give the same proposals."""
        if n < 0:
            raise ValueError(f"TPESampler.suggest: n={n!r} is negative; pass a count >= 0")
        if n == 0:
            return []
        if space.dim == 0:
            return [{} for _ in range(n)]
        trials = as_trials(trials)
        history = history_of(space, trials, minimize=minimize)
        rng = rng_for(seed, trials)
        taken = set(history.seen)
        out: list[dict[str, Any]] = []
        finished = history.n_observed + len(history.failed)
        if finished < N_STARTUP_TRIALS:
            for _ in range(n):
                out.append(unused_uniform(space, taken, rng))
            return out

        axes = _parzen.Axes.of(space)
        order = np.argsort(history.y, kind="stable")
        n_good = _parzen.default_gamma(history.n_observed)
        feasible = history.feasible
        if not feasible.all():
            # Constraints (c-TPE): infeasible trials are bad, the good group is the best feasible
            # ones. Only while none is feasible do the least violating lead, so that the search
            # heads for feasibility rather than away from every trial.
            order = np.lexsort((np.where(feasible, history.y, history.violation), ~feasible))
            n_good = min(n_good, int(feasible.sum())) or n_good
        good = np.sort(order[:n_good])
        bad = np.sort(order[n_good:])
        below = _parzen.build_estimator(axes, history.x[good], prior_weight=PRIOR_WEIGHT)
        # Older observed trials first, then failed and pending ones: the newest count fully.
        bad_points = [history.x[bad], history.failed, history.pending]
        return propose_batch(space, below, bad_points, n, taken, rng)


def propose_batch(
    space: Space,
    below: _parzen.ParzenEstimator,
    bad_points: Sequence[np.ndarray],
    n: int,
    taken: set[tuple[Any, ...]],
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """``n`` proposals by l(x) / g(x), where l(x) is ``below`` and g(x) the estimator of
    ``bad_points`` (arrays of unit-cube rows, oldest first) and of the proposals made before
    each one (the constant liar). Adds them to ``taken``; pure apart from consuming ``rng``."""
    points = list(bad_points)
    out: list[dict[str, Any]] = []
    for _ in range(n):
        above = _parzen.build_estimator(
            below.axes, np.concatenate(points), prior_weight=PRIOR_WEIGHT
        )
        params = _best_candidate(space, below, above, taken, rng)
        out.append(params)
        points.append(space.to_unit(params)[None, :])
    return out


def _best_candidate(
    space: Space,
    below: _parzen.ParzenEstimator,
    above: _parzen.ParzenEstimator,
    taken: set[tuple[Any, ...]],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The candidate from l(x) with the best l/g that no trial holds; adds it to ``taken``."""
    for _ in range(CANDIDATE_ROUNDS):
        # NaN on the axes each candidate's own choices leave inactive.
        candidates = space.mask(below.sample(rng, N_EI_CANDIDATES))
        score = below.log_pdf(candidates) - above.log_pdf(candidates)
        for i in np.argsort(-score, kind="stable"):
            params = space.from_unit(candidates[i])
            key = space.key(params)
            if key not in taken:
                taken.add(key)
                return params
    return unused_uniform(space, taken, rng)


def unused_uniform(
    space: Space, taken: set[tuple[Any, ...]], rng: np.random.Generator
) -> dict[str, Any]:
    """A uniform random configuration that no trial holds, while one is left; adds it to
    ``taken``. Pure apart from consuming ``rng``."""
    for _ in range(_RANDOM_TRIES):
        params = space.from_unit(rng.random(space.dim))
        key = space.key(params)
        if key not in taken:
            taken.add(key)
            return params
    return fill_unseen(space, taken, 1, rng)[0]
