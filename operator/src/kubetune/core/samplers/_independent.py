"""Independent TPE proposals: each parameter chosen on its own axis, as Optuna's TPE does by
default for several objectives.

Purely computational; pure apart from consuming the ``rng`` it is given.

Per proposal and per axis, l(x) is the one-dimensional Parzen estimator of the good group's
values on that axis (each kernel weighted as the caller says), g(x) that of the bad points'
values; ``tpe.N_EI_CANDIDATES`` (24) values are drawn from l(x) and the one with the largest
l(x) / g(x) is taken. An observation that leaves the axis inactive (NaN) is left out of that
axis' estimators. The proposal joins the bad points before the next one (the constant liar).

Why: the joint (multivariate) estimator scores a candidate on all axes at once, so with a good
group of a handful of trials one axis that separates them well drowns the others. Chosen axis by
axis, every axis follows its own good values. Measured for several objectives in
``samplers/motpe.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kubetune.core.samplers import _parzen
from kubetune.core.samplers.tpe import CANDIDATE_ROUNDS, N_EI_CANDIDATES, unused_uniform
from kubetune.core.space import CategoricalParam, Param, Space

__all__ = ["propose_batch"]



def _axes(param: Param) -> _parzen.Axes:
    """The one-axis model of ``param``."""
    if isinstance(param, CategoricalParam):
        return _parzen.Axes(1, np.zeros(0, dtype=np.int64), (), np.zeros(1, dtype=np.int64),
                            (param.n_values,))
    return _parzen.Axes(1, np.zeros(1, dtype=np.int64), (_parzen.Cells.of(param),),
                        np.zeros(0, dtype=np.int64), ())


def _estimator(axes: _parzen.Axes, values: np.ndarray, weights: np.ndarray | None,
               prior_weight: float) -> _parzen.ParzenEstimator:
    """The estimator of one axis' ``values`` (NaN: left out), with ``weights`` per value
    (None: the default recency weights) and the prior kernel's weight."""
    has = ~np.isnan(values)
    est = _parzen.build_estimator(axes, values[has][:, None], prior_weight=prior_weight)
    if weights is None or not has.any():
        return est
    w = np.append(weights[has], prior_weight)
    return _parzen.ParzenEstimator(axes, w / w.sum(), est.mus, est.sigmas, est.log_mass,
                                   est.categorical)


def _propose(space: Space, good: np.ndarray, weights: np.ndarray, bad: np.ndarray,
             prior_weight: float, rng: np.random.Generator) -> np.ndarray:
    """One point of the cube, each axis the best of its candidates by l / g."""
    u = np.empty(space.dim)
    for j, param in enumerate(space.params):
        axes = _axes(param)
        below = _estimator(axes, good[:, j], weights, prior_weight)
        above = _estimator(axes, bad[:, j], None, prior_weight)
        candidates = below.sample(rng, N_EI_CANDIDATES)
        score = below.log_pdf(candidates) - above.log_pdf(candidates)
        u[j] = candidates[int(np.argmax(score)), 0]
    return u


def propose_batch(
    space: Space,
    good: np.ndarray,
    weights: np.ndarray,
    bad_points: Sequence[np.ndarray],
    n: int,
    taken: set[tuple[Any, ...]],
    rng: np.random.Generator,
    *,
    prior_weight: float,
) -> list[dict[str, Any]]:
    """``n`` proposals chosen axis by axis from the good group's rows ``good`` (their kernel
    ``weights``) and the bad ``bad_points`` (arrays of unit-cube rows, oldest first); none is a
    configuration in ``taken``, to which they are added. Falls back to an unused uniform point
    when the candidates of ``tpe.CANDIDATE_ROUNDS`` rounds are all taken."""
    bad = np.concatenate([p.reshape(-1, space.dim) for p in bad_points])
    out: list[dict[str, Any]] = []
    for _ in range(n):
        params = None
        for _ in range(CANDIDATE_ROUNDS):
            u = space.mask(_propose(space, good, weights, bad, prior_weight, rng)[None, :])[0]
            candidate = space.from_unit(u)
            if space.key(candidate) not in taken:
                params = candidate
                break
        if params is None:
            params = unused_uniform(space, taken, rng)
        taken.add(space.key(params))
        out.append(params)
        bad = np.vstack([bad, space.to_unit(params)[None, :]])
    return out
