"""Parameter importance, fANOVA-style, on the GP surrogate the ``gp`` sampler fits. Pure.

fANOVA (Hutter et al., 2014) splits the variance of the objective over the search space into
the parts each parameter explains alone (main effects) and the rest (interactions). It needs a
surrogate it can average: Optuna's uses a random forest; here it is the same Matérn-5/2 ARD
Gaussian process (with Yeo-Johnson output warping) that ``kubetune.core.samplers.gp`` fits, so
the command needs nothing beyond numpy and scipy. On the unit cube, the main effect of
parameter i is ``f_i(u) = E[m(x) | x_i = u]``, the GP's posterior mean averaged over the other
parameters (Monte Carlo, on a fixed design so the answer is deterministic); its importance is
``Var_u f_i(u)``, normalised so the parameters sum to 1, as Optuna reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kubetune.core.samplers._gp import fit, warping
from kubetune.core.space import CategoricalParam, Param, Space
from kubetune.core.trials import Trial, TrialState

__all__ = ["Importance", "importances", "min_trials"]

_SAMPLES = 256  # Monte Carlo rows averaged per grid value
_GRID = 24  # grid values per continuous parameter
_MAX_TRAIN = 300  # the GP is cubic in its training set


@dataclass(frozen=True)
class Importance:
    """Each parameter's share of the explained variance (they sum to 1), largest first, and
    the fraction of the surrogate's variance that main effects explain (the rest is
    interactions)."""

    shares: tuple[tuple[str, float], ...]
    main_effects: float
    trials: int


def min_trials(space: Space) -> int:
    """Succeeded trials needed before the surrogate says anything: a few per parameter."""
    return max(5, space.dim + 3)


def _grid(param: Param) -> np.ndarray:
    """Unit-cube values at which to read the main effect of ``param``."""
    if isinstance(param, CategoricalParam):
        return (np.arange(param.n_values) + 0.5) / param.n_values
    n = param.n_values
    if n is not None and n <= _GRID:
        return np.unique([param.to_unit(param.from_unit((k + 0.5) / n)) for k in range(n)])
    return (np.arange(_GRID) + 0.5) / _GRID


def importances(space: Space, trials: Sequence[Trial], *, minimize: bool) -> Importance | None:
    """The importance of each parameter, from the Succeeded trials; None with fewer than
    ``min_trials(space)`` of them or a constant objective."""
    done = [t for t in trials if t.state is TrialState.SUCCEEDED and t.has_value
            and space.contains(t.params)]
    if len(done) < min_trials(space):
        return None
    sign = 1.0 if minimize else -1.0
    done.sort(key=lambda t: sign * float(t.value))  # type: ignore[arg-type]
    done = done[:_MAX_TRAIN]
    x = np.array([space.to_unit(t.params) for t in done])
    y = warping.warp(np.array([sign * float(t.value) for t in done]),  # type: ignore[arg-type]
                     "yeo_johnson")
    if not np.any(y):
        return None
    is_cat = np.array([isinstance(p, CategoricalParam) for p in space.params], dtype=bool)
    params = fit.fit_kernel_params(x, y, is_cat)
    posterior = fit.Posterior.fit(x, y, params, is_cat)
    rng = np.random.default_rng(0)
    # Snap the design onto admissible values: the kernel compares categoricals by equality.
    design = np.array([space.to_unit(space.from_unit(u)) for u in rng.random((_SAMPLES,
                                                                              space.dim))])
    total = float(np.var(posterior.predict(design)[0]))
    effects = []
    for i, param in enumerate(space.params):
        grid = _grid(param)
        rows = np.repeat(design[None, :, :], len(grid), axis=0)
        rows[:, :, i] = grid[:, None]
        # Where the design's choices leave parameter i inactive, it stays absent (NaN).
        flat = space.mask(rows.reshape(-1, space.dim)) if space.conditional else \
            rows.reshape(-1, space.dim)
        means = posterior.predict(flat)[0].reshape(len(grid), _SAMPLES)
        effects.append(float(np.var(means.mean(axis=1))))
    explained = sum(effects)
    if explained <= 0 or total <= 0:
        return None
    shares = sorted(zip(space.names, (e / explained for e in effects), strict=True),
                    key=lambda kv: -kv[1])
    return Importance(tuple(shares), min(1.0, explained / total), len(done))
