"""Maximise an acquisition function over a mixed unit cube. Pure (randomness is passed in).

The search, in the manner of Optuna's ``optim_mixed`` but with a cheaper local phase:

1. Score a scrambled Sobol design plus perturbations of the best observed points (the
   "anchors"; in many dimensions, space-filling points alone rarely land near the optimum).
   Every candidate is snapped to admissible values first, so discrete axes are scored where
   they can actually be proposed.
2. From the best few, alternate L-BFGS-B over the continuous axes (with the analytic gradient,
   preconditioned by the lengthscales) with a sweep of each discrete axis: every value when
   there are few (always for categoricals), else a line of exponentially spaced neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import optimize

__all__ = ["Acquisition", "Domain", "maximize"]

_EXHAUSTIVE_MAX = 32


@dataclass(frozen=True)
class Domain:
    """Which axes are categorical, and the admissible unit-cube values of each discrete axis.

    ``choices[j]`` is a sorted array for a discrete axis (int, stepped float, categorical) and
    None for a continuous one.
    """

    is_cat: np.ndarray
    choices: tuple[np.ndarray | None, ...]

    @property
    def dim(self) -> int:
        return len(self.choices)

    @property
    def continuous(self) -> np.ndarray:
        return np.array([c is None for c in self.choices], dtype=bool)

    def snap(self, x: np.ndarray) -> np.ndarray:
        """Move discrete coordinates of the rows of ``x`` to the nearest admissible value."""
        x = np.clip(x, 0.0, 1.0)
        for j, c in enumerate(self.choices):
            if c is not None:
                x[:, j] = c[_nearest(c, x[:, j])]
        return x


def _nearest(c: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.clip(np.searchsorted(c, v), 1, max(1, len(c) - 1))
    if len(c) == 1:
        return np.zeros_like(i)
    return np.where(np.abs(v - c[i - 1]) <= np.abs(c[i] - v), i - 1, i)


class Acquisition(Protocol):
    """Values at the rows of x, and values with gradients, as ``acquisition.LogEI`` gives."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def with_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _candidates(
    domain: Domain,
    anchors: np.ndarray,
    rng: np.random.Generator,
    n_sobol: int,
    n_local: int,
    box: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    d = domain.dim
    from scipy.stats import qmc  # slow to import: only once the GP has data to fit

    lower, upper = box
    sobol = qmc.Sobol(d, scramble=True, seed=rng).random_base2(int(np.log2(n_sobol)))
    parts = [lower + sobol * (upper - lower)]
    if len(anchors) and n_local:
        base = anchors[rng.integers(len(anchors), size=n_local)]
        # Step sizes from fine to coarse, log-uniform, so both polishing and jumps happen.
        scale = np.exp(rng.uniform(np.log(0.005), np.log(0.3), size=(n_local, 1)))
        local = base + scale * rng.standard_normal((n_local, d))
        for j in np.flatnonzero(domain.is_cat):
            flip = rng.random(n_local) < 0.3
            c = domain.choices[j]
            assert c is not None  # a categorical column always has its choices
            local[flip, j] = c[rng.integers(len(c), size=int(flip.sum()))]
        parts.append(np.clip(local, lower, upper))
    return domain.snap(np.vstack(parts))


def _continuous_ascent(
    acq: Acquisition,
    x0: np.ndarray,
    f0: float,
    cont: np.ndarray,
    lengthscales: np.ndarray,
    box: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, float]:
    """L-BFGS-B on the continuous axes of one point, in lengthscale units, inside ``box``."""
    ls = np.clip(lengthscales[cont], 1e-3, None)
    lower, upper = box[0][cont], box[1][cont]
    x = x0.copy()

    def neg(zc: np.ndarray) -> tuple[float, np.ndarray]:
        x[cont] = zc * ls
        v, g = acq.with_grad(x[None, :])
        return -float(v[0]), -g[0, cont] * ls

    res = optimize.minimize(
        neg,
        x0[cont] / ls,
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lower / ls, upper / ls, strict=True)),
        options={"maxiter": 100, "gtol": 1e-5},
    )
    if np.isfinite(res.fun) and -res.fun > f0:
        x[cont] = np.clip(res.x * ls, lower, upper)
        return x, -float(res.fun)
    return x0, f0


def _axis_values(c: np.ndarray, current: float, categorical: bool) -> np.ndarray:
    if categorical or len(c) <= _EXHAUSTIVE_MAX:
        return c
    i = int(_nearest(c, np.array([current]))[0])
    offsets = 2 ** np.arange(int(np.log2(len(c))) + 1)
    idx = np.concatenate([i - offsets, i + offsets])
    return c[np.unique(np.clip(idx, 0, len(c) - 1))]


def _discrete_sweep(
    acq: Acquisition, domain: Domain, x0: np.ndarray, f0: float
) -> tuple[np.ndarray, float, bool]:
    x, f, moved = x0.copy(), f0, False
    for j, c in enumerate(domain.choices):
        if c is None or len(c) < 2:
            continue
        values = _axis_values(c, x[j], bool(domain.is_cat[j]))
        trial = np.repeat(x[None, :], len(values), axis=0)
        trial[:, j] = values
        scores = acq(trial)
        k = int(np.argmax(scores))
        if scores[k] > f + 1e-12 and values[k] != x[j]:
            x, f, moved = trial[k], float(scores[k]), True
    return x, f, moved


def maximize(
    acq: Acquisition,
    domain: Domain,
    rng: np.random.Generator,
    *,
    anchors: np.ndarray,
    lengthscales: np.ndarray,
    n_sobol: int = 1024,
    n_local: int = 1024,
    n_starts: int = 4,
    max_rounds: int = 3,
    box: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate points sorted by acquisition value, best first, with their values.

    ``box`` (lower, upper) limits the continuous axes (a trust region); default the unit cube.

    ``acq(x) -> (m,)`` and ``acq.with_grad(x) -> ((m,), (m, d))``. The first row is the
    optimum found; later rows (other local optima, then the best raw candidates) let the caller
    skip a point it has already proposed.
    """
    if box is None:
        box = (np.zeros(domain.dim), np.ones(domain.dim))
    cands = _candidates(domain, anchors, rng, n_sobol, n_local, box)
    scores = acq(cands)
    order = np.argsort(-scores, kind="stable")
    cont = domain.continuous
    starts: list[int] = []
    for i in order:
        if all(not np.array_equal(cands[i], cands[s]) for s in starts):
            starts.append(int(i))
        if len(starts) == n_starts:
            break
    found_x, found_f = [], []
    for s in starts:
        x, f = cands[s], float(scores[s])
        for _ in range(max_rounds):
            if cont.any():
                x, f = _continuous_ascent(acq, x, f, cont, lengthscales, box)
            x, f, moved = _discrete_sweep(acq, domain, x, f)
            if not moved:
                break
        found_x.append(x)
        found_f.append(f)
    top = order[:64]
    xs = np.vstack([np.array(found_x), cands[top]])
    fs = np.concatenate([np.array(found_f), scores[top]])
    rank = np.argsort(-fs, kind="stable")
    return xs[rank], fs[rank]
