"""Parzen estimators on the unit cube: the math under the TPE sampler.

Purely computational; every function here is pure apart from consuming the ``rng`` it is given.

An estimator is a mixture of product kernels, one per observation plus a prior kernel (centre of
the cube, bandwidth 1), as in Optuna's multivariate TPE:

- continuous axes: a Gaussian truncated to [0, 1];
- discrete numeric axes (int, stepped float): the same Gaussian, discretised: a value's
  probability is the kernel's mass over the value's cell of the unit interval, so the cells
  partition [0, 1] and the probabilities of all values sum to 1;
- categorical axes: a kernel that puts most of its weight on the observed category and spreads
  ``prior_weight / (n + 1)`` over every category (Aitchison-Aitken style; the prior kernel is
  uniform).

In a conditional space an observation is NaN on the axes it leaves inactive: its kernel there
is the prior's (it says nothing about that axis), and a point that is NaN on an axis is scored
on its other axes only. The same holds for both estimators, so l/g compares configurations on
what they share; an absent value is never read as a number.

Bandwidths follow Optuna: the larger distance to the neighbouring observation (in sorted order,
the cube's ends count as neighbours for interior points), clipped to
``[1 / min(100, n + 2), 1]`` ("magic clip"), so that neither lone points nor clusters give
kernels too wide or too sharp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kubetune.core.space import CategoricalParam, IntParam, Param, Space

__all__ = [
    "Axes",
    "Cells",
    "ParzenEstimator",
    "build_estimator",
    "default_gamma",
    "default_weights",
    "log_gauss_mass",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def default_gamma(n: int) -> int:
    """How many of ``n`` observed trials make the good group l(x): min(ceil(0.1 n), 25)."""
    return min(math.ceil(0.1 * n), 25)


def default_weights(n: int) -> np.ndarray:
    """Mixture weights of ``n`` observations in trial order: the newest 25 count fully, older ones
    ramp down linearly, so an old region the study has moved away from fades out."""
    if n < 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, num=n - 25), np.ones(25)])


def log_gauss_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)) for a < b elementwise, accurate in both tails.

    Mirrors the interval into the left half (Phi(b) - Phi(a) = Phi(-a) - Phi(-b)), where the
    normal CDF is small and ``log_ndtr`` keeps its relative precision.
    """
    from scipy import special

    flip = (a + b) > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    log_hi = special.log_ndtr(hi)
    log_lo = special.log_ndtr(lo)
    with np.errstate(divide="ignore"):
        return log_hi + np.log1p(-np.exp(log_lo - log_hi))


@dataclass(frozen=True)
class Cells:
    """The cells that a discrete numeric parameter cuts the unit interval into.

    Mirrors ``Space``: equal cells, except log-scaled ints (step 1), whose value v owns
    [log(v - 0.5), log(v + 0.5)], normalised. Edges are computed per cell, never as an array of
    all of them, so a range of 10**9 integers costs nothing.
    """

    n: int
    log_low: int | None = None  # the int's ``low`` for log-scaled cells, else None
    log_origin: float = 0.0
    log_width: float = 1.0

    @classmethod
    def of(cls, param: Param) -> Cells | None:
        """The cells of ``param``, or None for a continuous or categorical one."""
        if isinstance(param, CategoricalParam) or param.n_values is None:
            return None
        if isinstance(param, IntParam) and param.log and param.step == 1:
            origin = math.log(param.low - 0.5)
            return cls(param.n_values, param.low, origin, math.log(param.high + 0.5) - origin)
        return cls(param.n_values)

    def _log_edge(self, i: np.ndarray) -> np.ndarray:
        return (np.log(self.log_low + i - 0.5) - self.log_origin) / self.log_width

    def index(self, u: np.ndarray) -> np.ndarray:
        """The cell of each point of ``u`` (any shape), as ``Space.from_unit`` decides it."""
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        if self.log_low is None:
            return np.clip(np.floor(u * self.n), 0, self.n - 1).astype(np.int64)
        i = np.floor(np.exp(self.log_origin + u * self.log_width) + 0.5) - self.log_low
        i = np.clip(i, 0, self.n - 1).astype(np.int64)
        # exp/log rounding can land one cell off near an edge: settle it on the edges.
        i = np.where((i > 0) & (u < self._log_edge(i)), i - 1, i)
        return np.where((i < self.n - 1) & (u >= self._log_edge(i + 1)), i + 1, i)

    def bounds(self, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper edges of cells ``i``."""
        if self.log_low is None:
            return i / self.n, (i + 1) / self.n
        lower = np.where(i == 0, 0.0, self._log_edge(i))
        upper = np.where(i == self.n - 1, 1.0, self._log_edge(i + 1))
        return lower, upper

    def centre(self, i: np.ndarray) -> np.ndarray:
        """The point ``Space.to_unit`` gives the value of cell ``i``."""
        if self.log_low is None:
            return (i + 0.5) / self.n
        return (self._log_edge(i) + self._log_edge(i + 1)) / 2


@dataclass(frozen=True)
class Axes:
    """How each axis of a space's unit cube is modelled: numeric (continuous or in cells) or
    categorical."""

    dim: int
    numeric: np.ndarray  # indices of the numeric axes
    cells: tuple[Cells | None, ...]  # per numeric axis; None when continuous
    categorical: np.ndarray  # indices of the categorical axes
    choices: tuple[int, ...]  # per categorical axis: how many values

    @classmethod
    def of(cls, space: Space) -> Axes:
        numeric = [i for i, p in enumerate(space.params) if not isinstance(p, CategoricalParam)]
        categorical = [i for i, p in enumerate(space.params) if isinstance(p, CategoricalParam)]
        return cls(
            space.dim,
            np.array(numeric, dtype=np.int64),
            tuple(Cells.of(space.params[i]) for i in numeric),
            np.array(categorical, dtype=np.int64),
            tuple(p.n_values for p in space.params if isinstance(p, CategoricalParam)),
        )

    @property
    def continuous(self) -> np.ndarray:
        """Positions (within the numeric axes) of the continuous ones."""
        return np.array([j for j, c in enumerate(self.cells) if c is None], dtype=np.int64)


def _bandwidths(mus: np.ndarray) -> np.ndarray:
    """Optuna's bandwidth per observation and axis: the larger gap to a neighbour, clipped.

    ``mus`` is (n, k) with n >= 1. With two or more observations the outermost ones use their
    one inner gap, so that the cube's ends do not widen them.
    """
    n = len(mus)
    order = np.argsort(mus, axis=0, kind="stable")
    ordered = np.take_along_axis(mus, order, axis=0)
    k = mus.shape[1]
    padded = np.concatenate([np.zeros((1, k)), ordered, np.ones((1, k))], axis=0)
    gaps = np.diff(padded, axis=0)
    sigmas = np.maximum(gaps[:-1], gaps[1:])
    if n >= 2:
        sigmas[0] = gaps[1]
        sigmas[-1] = gaps[-2]
    out = np.empty_like(sigmas)
    np.put_along_axis(out, order, sigmas, axis=0)
    return np.clip(out, 1.0 / min(100.0, n + 2.0), 1.0)


@dataclass(frozen=True)
class ParzenEstimator:
    """A mixture of product kernels on the unit cube (see the module docstring). Immutable."""

    axes: Axes
    weights: np.ndarray  # (K,), sums to 1; the last kernel is the prior
    mus: np.ndarray  # (K, numeric axes)
    sigmas: np.ndarray  # (K, numeric axes)
    log_mass: np.ndarray  # (K, numeric axes): log of each kernel's mass inside [0, 1]
    categorical: tuple[np.ndarray, ...]  # per categorical axis: (K, choices), rows sum to 1

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` points drawn from the mixture; discrete axes land on their cell centres."""
        from scipy import special

        axes = self.axes
        kernel = rng.choice(len(self.weights), size=size, p=self.weights)
        out = np.empty((size, axes.dim))
        if len(axes.numeric):
            mu, sigma = self.mus[kernel], self.sigmas[kernel]
            # Inverse CDF inside [0, 1]: the kernel centres lie in the cube, so each interval
            # straddles its kernel's mean and the CDF differences keep their precision.
            low, high = special.ndtr(-mu / sigma), special.ndtr((1.0 - mu) / sigma)
            q = low + rng.random(mu.shape) * (high - low)
            x = np.clip(mu + sigma * special.ndtri(q), 0.0, 1.0)
            for j, cells in enumerate(axes.cells):
                if cells is not None:
                    x[:, j] = cells.centre(cells.index(x[:, j]))
            out[:, axes.numeric] = x
        for c, axis in enumerate(axes.categorical):
            cum = np.cumsum(self.categorical[c][kernel], axis=1)
            pick = (cum < rng.random(size)[:, None] * cum[:, -1:]).sum(axis=1)
            n = axes.choices[c]
            out[:, axis] = (np.minimum(pick, n - 1) + 0.5) / n
        return out

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """Log density (log probability on discrete and categorical axes) at points ``x`` (m, d);
        a NaN axis (inactive) is left out of a point's density."""
        axes = self.axes
        x = np.atleast_2d(np.asarray(x, dtype=float))
        if np.isnan(x).any():
            return self._log_pdf_partial(x)
        total = np.broadcast_to(np.log(self.weights), (len(x), len(self.weights))).copy()
        if len(axes.numeric):
            xn = x[:, axes.numeric]
            cont = axes.continuous
            if len(cont):
                mu, sigma = self.mus[:, cont], self.sigmas[:, cont]
                z = (xn[:, None, cont] - mu[None]) / sigma[None]
                const = (np.log(sigma) + _LOG_SQRT_2PI + self.log_mass[:, cont]).sum(axis=1)
                total += -0.5 * np.square(z).sum(axis=2) - const[None]
            for j, cells in enumerate(axes.cells):
                if cells is None:
                    continue
                lower, upper = cells.bounds(cells.index(xn[:, j]))
                mu, sigma = self.mus[None, :, j], self.sigmas[None, :, j]
                total += log_gauss_mass(
                    (lower[:, None] - mu) / sigma, (upper[:, None] - mu) / sigma
                )
                total -= self.log_mass[None, :, j]
        for c, axis in enumerate(axes.categorical):
            n = axes.choices[c]
            pick = np.clip(np.floor(x[:, axis] * n), 0, n - 1).astype(np.int64)
            with np.errstate(divide="ignore"):
                total += np.log(self.categorical[c][:, pick].T)
        peak = total.max(axis=1)
        peak = np.where(np.isfinite(peak), peak, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(np.exp(total - peak[:, None]).sum(axis=1)) + peak


    def _log_pdf_partial(self, x: np.ndarray) -> np.ndarray:
        """``log_pdf`` for points with NaN (inactive) axes: each axis term only where the point
        has a value."""
        axes = self.axes
        total = np.broadcast_to(np.log(self.weights), (len(x), len(self.weights))).copy()
        for j, axis in enumerate(axes.numeric):
            has = ~np.isnan(x[:, axis])
            if not has.any():
                continue
            v = x[has, axis]
            mu, sigma = self.mus[None, :, j], self.sigmas[None, :, j]
            cells = axes.cells[j]
            if cells is None:
                z = (v[:, None] - mu) / sigma
                term = -0.5 * z * z - (np.log(sigma) + _LOG_SQRT_2PI + self.log_mass[None, :, j])
            else:
                lower, upper = cells.bounds(cells.index(v))
                term = log_gauss_mass((lower[:, None] - mu) / sigma,
                                      (upper[:, None] - mu) / sigma) - self.log_mass[None, :, j]
            total[has] += term
        for c, axis in enumerate(axes.categorical):
            has = ~np.isnan(x[:, axis])
            if not has.any():
                continue
            n = axes.choices[c]
            pick = np.clip(np.floor(x[has, axis] * n), 0, n - 1).astype(np.int64)
            with np.errstate(divide="ignore"):
                total[has] += np.log(self.categorical[c][:, pick].T)
        peak = total.max(axis=1)
        peak = np.where(np.isfinite(peak), peak, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(np.exp(total - peak[:, None]).sum(axis=1)) + peak


def _partial_bandwidths(observed: np.ndarray) -> np.ndarray:
    """``_bandwidths`` axis by axis over the observations that have the axis; 1 (the prior's)
    where an observation leaves it inactive."""
    out = np.ones_like(observed)
    for j in range(observed.shape[1]):
        has = ~np.isnan(observed[:, j])
        if has.any():
            out[has, j] = _bandwidths(observed[has, j][:, None])[:, 0]
    return out


def build_estimator(
    axes: Axes,
    points: np.ndarray,
    *,
    prior_weight: float = 1.0,
) -> ParzenEstimator:
    """The estimator of ``points`` (n, d) on the unit cube, given in trial order (older first).

    Pure. With no points it is the prior alone.
    """
    points = np.asarray(points, dtype=float).reshape(-1, axes.dim)
    n = len(points)
    if n == 0:
        weights = np.ones(1)
    else:
        weights = np.append(default_weights(n), prior_weight)
        weights = weights / weights.sum()
    k = len(axes.numeric)
    if k:
        observed = points[:, axes.numeric]
        if np.isnan(observed).any():
            # Inactive in an observation: that kernel is the prior's on the axis.
            sigmas = _partial_bandwidths(observed)
            observed = np.where(np.isnan(observed), 0.5, observed)
        else:
            sigmas = _bandwidths(observed) if n else np.empty((0, k))
        mus = np.vstack([observed, np.full((1, k), 0.5)])
        sigmas = np.vstack([sigmas, np.ones((1, k))])
        log_mass = log_gauss_mass(-mus / sigmas, (1.0 - mus) / sigmas)
    else:
        mus = sigmas = log_mass = np.empty((n + 1, 0))
    categorical = []
    for c, axis in enumerate(axes.categorical):
        choices = axes.choices[c]
        table = np.full((n + 1, choices), prior_weight / (n + 1))
        has = ~np.isnan(points[:, axis])
        picks = np.clip(np.floor(points[has, axis] * choices), 0, choices - 1).astype(np.int64)
        table[np.flatnonzero(has), picks] += 1.0  # an inactive observation: uniform
        table[n] = 1.0  # the prior kernel: uniform
        categorical.append(table / table.sum(axis=1, keepdims=True))
    return ParzenEstimator(axes, weights, mus, sigmas, log_mass, tuple(categorical))
