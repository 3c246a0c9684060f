"""CMA-ES for long numeric studies, replayed from the trial list on every call.

Purely computational: ``CMAESSampler.suggest`` is a pure function of (space, trials, n,
direction, seed). The sampler keeps no state: it rebuilds the evolution strategy from the history
on every call, so a restarted operator proposes exactly what it would have proposed.

How a history becomes generations. The trials, in trial-number order (without Lost trials and
trials whose params no longer fit the space, as ``history_of``), are cut into consecutive blocks
of ``popsize``; block ``g`` is generation ``g``. The replay starts at the centre of the unit cube
with step size 1/6 and tells the blocks to the strategy in order while they are complete (every
member finished). Member ``j`` of generation ``g`` is drawn with the ``j``-th standard normal
vector of a stream keyed by (seed, g), from the latest state at the time it is asked for.

- Still running: the first incomplete block stops the replay. Points asked for beyond it are
  further samples from the latest state, so the sampler never stalls. A block held up by a
  straggler is told anyway, its pending members ranked last, once ``2 * popsize`` trials more
  than are still active follow it.
- Points the current state did not draw (samples from an older state, asked for while an earlier
  generation was still running; another sampler's trials, e.g. ``auto`` handing over after its
  GP phase; a study whose algorithm changed) are told like the rest, relative to the current
  state, each step first clipped to a Mahalanobis length of ``sqrt(d) + 2d/(d+2)`` (Hansen,
  "Injecting external solutions into CMA-ES", 2011), so they steer the mean, step size and
  covariance without wrecking them. The replay is its own warm start, and needs no record of who
  proposed what, which the history does not hold. (Telling each point's step from the state that
  drew it instead, recognised by redrawing, converged worse with 8 trials in parallel.)
- Members that broke a constraint (``Trial.violation`` above 0) rank after every feasible
  member, by violation; failed members rank last. A block without any value is skipped.
- Restarts (IPOP): when the step size collapses, the covariance is ill conditioned or the values
  stay flat, the strategy restarts from the centre with twice the population (up to 16x).

Integers, stepped floats and categoricals are one axis each of the unit cube, mapped with
``Space.from_unit``. Their sampling spread is kept at or above a margin (the spread at which a
draw leaves the mean's cell on each side with probability about ``1 / (d popsize)``, as in CMA-ES
with margin), so that they do not freeze on one value. Draws outside the cube are mirrored back.

Full covariance below ``SEP_CMA_DIM`` parameters; from there on separable (diagonal) CMA-ES,
whose covariance learning rates are about (d + 2)/3 times higher: within the budgets of
hyperparameter studies (hundreds to a few thousand trials) a full covariance in 20 or more
dimensions is never learnt (its rank-one rate is about 2/d^2), while a diagonal one is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubetune.core.samplers._parzen import Cells
from kubetune.core.samplers.base import rng_for
from kubetune.core.samplers.random import fill_unseen
from kubetune.core.space import CategoricalParam, Space
from kubetune.core.trials import Trial, TrialState, as_trials

__all__ = ["SEP_CMA_DIM", "CMAESSampler", "default_popsize"]

SEP_CMA_DIM = 20
_SIGMA0 = 1.0 / 6.0
_SALT = 0x434D41  # "CMA": keeps these streams apart from other samplers' seeds
# Draws per proposal at the strategy's own spread, then at doubling spreads, before a proposal
# that repeats a taken configuration gives way to an unused random one.
_FRESH_TRIES = 8
_WIDEN_TRIES = 8
_MAX_RESTART_FACTOR = 16
_TOL_SPREAD = 1e-8  # restart when sigma * (longest axis of C) falls below this (unit cube)
_MAX_CONDITION = 1e14
_TOL_VALUES = 1e-12  # restart when recent generations' values span less than this


def default_popsize(dim: int) -> int:
    """CMA-ES' population: 4 + floor(3 ln d)."""
    return 4 + math.floor(3 * math.log(max(1, dim)))


def _reflect(u: np.ndarray) -> np.ndarray:
    """Mirror points into [0, 1] at the faces of the cube."""
    v = np.mod(u, 2.0)
    return np.where(v > 1.0, 2.0 - v, v)


@dataclass(frozen=True)
class _Axes:
    """The cells of a space's discrete axes (None for continuous ones), for the margins."""

    cells: tuple[Cells | None, ...]

    @classmethod
    def of(cls, space: Space) -> _Axes:
        return cls(
            tuple(
                Cells(p.n_values) if isinstance(p, CategoricalParam) else Cells.of(p)
                for p in space.params
            )
        )

    def margins(self, mean: np.ndarray, popsize: int) -> np.ndarray:
        """Least spread per axis: a draw leaves the mean's cell on each side with probability
        about 1 / (d popsize). Zero on continuous axes."""
        from scipy import special

        z = float(special.ndtri(1.0 - 1.0 / (len(self.cells) * popsize)))
        out = np.zeros(len(self.cells))
        for i, cells in enumerate(self.cells):
            if cells is None:
                continue
            if cells.log_low is None:
                width = 1.0 / cells.n
            else:
                lower, upper = cells.bounds(cells.index(mean[i : i + 1]))
                width = float(upper[0] - lower[0])
            out[i] = width / (2 * z)
        return out


@dataclass(frozen=True)
class _Constants:
    """Learning rates of one population size (Hansen's defaults; sep-CMA's for ``separable``)."""

    dim: int
    popsize: int
    separable: bool
    weights: np.ndarray
    mueff: float
    c_sigma: float
    d_sigma: float
    c_c: float
    c_1: float
    c_mu: float
    chi_n: float
    clip: float

    @classmethod
    def of(cls, dim: int, popsize: int, separable: bool) -> _Constants:
        mu = popsize // 2
        raw = math.log((popsize + 1) / 2) - np.log(np.arange(1, mu + 1))
        weights = raw / raw.sum()
        mueff = 1.0 / float(np.sum(weights**2))
        c_sigma = (mueff + 2) / (dim + mueff + 5)
        d_sigma = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (dim + 1)) - 1) + c_sigma
        c_c = (4 + mueff / dim) / (dim + 4 + 2 * mueff / dim)
        c_1 = 2 / ((dim + 1.3) ** 2 + mueff)
        c_mu = min(1 - c_1, 2 * (mueff - 2 + 1 / mueff) / ((dim + 2) ** 2 + mueff))
        if separable:
            c_1 *= (dim + 2) / 3
            c_mu = min(1 - c_1, c_mu * (dim + 2) / 3)
        chi_n = math.sqrt(dim) * (1 - 1 / (4 * dim) + 1 / (21 * dim**2))
        clip = math.sqrt(dim) + 2 * dim / (dim + 2)
        return cls(
            dim, popsize, separable, weights, mueff, c_sigma, d_sigma, c_c, c_1, c_mu, chi_n, clip
        )


@dataclass(frozen=True)
class _Source:
    """A frozen state to draw from: x = mean + sigma * widen * B D z, mirrored into the cube."""

    mean: np.ndarray
    sigma: float
    B: np.ndarray | None  # None when separable
    D: np.ndarray
    widen: np.ndarray  # per axis, >= 1: the margin on discrete axes

    def points(self, z: np.ndarray, factor: float = 1.0) -> np.ndarray:
        """Draws for standard normal rows ``z`` (m, d), their spread times ``factor``."""
        step = z * self.D if self.B is None else (z * self.D) @ self.B.T
        return _reflect(self.mean + factor * self.sigma * self.widen * step)

    def whiten(self, delta: np.ndarray) -> np.ndarray:
        """The standard normal rows that take the mean by steps ``delta`` (m, d)."""
        scaled = delta / (self.sigma * self.widen)
        return scaled / self.D if self.B is None else ((scaled @ self.B) / self.D) @ self.B.T


class _Strategy:
    """The state of one CMA-ES run. Mutable, but lives only inside one replay."""

    def __init__(self, constants: _Constants) -> None:
        d = constants.dim
        self.k = constants
        self.mean = np.full(d, 0.5)
        self.sigma = _SIGMA0
        # Full: C = B diag(D^2) B^T. Separable: C = diag(D^2) and B is not used.
        self.cov = np.ones(d) if constants.separable else np.eye(d)
        self.B = np.eye(d)
        self.D = np.ones(d)
        self.p_sigma = np.zeros(d)
        self.p_c = np.zeros(d)
        self.generation = 0
        self.bests: list[float] = []  # best value of each generation told
        self.spans: list[float] = []  # range of each told generation's values

    def source(self, axes: _Axes) -> _Source:
        """A frozen copy to draw from, with the margins of the discrete axes."""
        diag = self.cov if self.k.separable else np.diag(self.cov)
        spread = self.sigma * np.sqrt(np.maximum(diag, 1e-300))
        widen = np.maximum(1.0, axes.margins(self.mean, self.k.popsize) / spread)
        return _Source(
            self.mean.copy(),
            self.sigma,
            None if self.k.separable else self.B.copy(),
            self.D.copy(),
            widen,
        )

    def tell(
        self, x: np.ndarray, f: np.ndarray, source: _Source, violation: np.ndarray | None = None
    ) -> None:
        """One generation's update from points ``x`` (popsize, d) ranked by ``f`` (lower is
        better, +inf failed; at least one finite) and ``violation`` (above 0: infeasible, ranked
        after the feasible). ``source`` is this state's own ``source()``.
        """
        k = self.k
        delta = x - self.mean
        y = delta / self.sigma
        white = source.whiten(delta)
        finite = f[np.isfinite(f)]
        self.bests.append(float(finite.min()))
        self.spans.append(float(finite.max() - finite.min()))
        order = _ranking(f, violation)
        # Steps longer than `clip` in the metric of C are shortened (injected solutions).
        lengths = np.linalg.norm(white[order], axis=1)
        shrink = np.minimum(1.0, k.clip / np.maximum(lengths, 1e-300))[:, None]
        mu = len(k.weights)
        delta, y, white = (a[order][:mu] * shrink[:mu] for a in (delta, y, white))
        self.mean = self.mean + k.weights @ delta
        self.p_sigma = (1 - k.c_sigma) * self.p_sigma + math.sqrt(
            k.c_sigma * (2 - k.c_sigma) * k.mueff
        ) * (k.weights @ white)
        self.generation += 1
        norm_ps = float(np.linalg.norm(self.p_sigma))
        h_sigma = (
            norm_ps / math.sqrt(1 - (1 - k.c_sigma) ** (2 * self.generation))
            < (1.4 + 2 / (k.dim + 1)) * k.chi_n
        )
        y_w = k.weights @ y
        self.p_c = (1 - k.c_c) * self.p_c + h_sigma * math.sqrt(k.c_c * (2 - k.c_c) * k.mueff) * y_w
        keep = 1 + k.c_1 * (1 - h_sigma) * k.c_c * (2 - k.c_c) - k.c_1 - k.c_mu
        if k.separable:
            rank_mu = k.weights @ np.square(y)
            self.cov = keep * self.cov + k.c_1 * np.square(self.p_c) + k.c_mu * rank_mu
            self.D = np.sqrt(np.maximum(self.cov, 1e-300))
        else:
            rank_mu = (y.T * k.weights) @ y
            cov = keep * self.cov + k.c_1 * np.outer(self.p_c, self.p_c) + k.c_mu * rank_mu
            self.cov = (cov + cov.T) / 2
            eigenvalues, self.B = np.linalg.eigh(self.cov)
            self.D = np.sqrt(np.maximum(eigenvalues, 1e-300))
        exponent = (k.c_sigma / k.d_sigma) * (norm_ps / k.chi_n - 1)
        self.sigma = min(1.0, self.sigma * math.exp(min(1.0, exponent)))

    def exhausted(self) -> bool:
        """Whether the run has converged, stagnated or degenerated, and should restart."""
        if not (np.isfinite(self.mean).all() and np.isfinite(self.D).all()):
            return True
        spread = self.sigma * float(self.D.max())
        condition = (float(self.D.max()) / float(self.D.min())) ** 2
        if spread < _TOL_SPREAD or condition > _MAX_CONDITION:
            return True
        # Flat: the last 10 + 30 d / popsize generations all found (nearly) the same value.
        window = 10 + math.ceil(30 * self.k.dim / self.k.popsize)
        if len(self.bests) < window:
            return False
        recent = self.bests[-window:]
        return max(recent) - min(recent) < _TOL_VALUES and max(self.spans[-window:]) < _TOL_VALUES


def _ranking(f: np.ndarray, violation: np.ndarray | None) -> np.ndarray:
    """Members best first: feasible ones by ``f``, then infeasible ones by violation, then
    those without a value (+inf). Without violations, exactly ``argsort(f)``."""
    if violation is None or not (violation > 0.0).any():
        return np.argsort(f, kind="stable")
    infeasible = np.isfinite(f) & (violation > 0.0)
    group = np.where(np.isfinite(f), infeasible.astype(int), 2)
    return np.lexsort((np.where(infeasible, violation, f), group))


def _first_draws(seed: int, generation: int, popsize: int, dim: int) -> np.ndarray:
    """The standard normal vectors of generation ``generation``'s members, one row each."""
    stream = np.random.default_rng([int(seed) & 0xFFFFFFFF, _SALT, generation])
    return stream.standard_normal((popsize, dim))


@dataclass(frozen=True)
class _Replay:
    """Where a replay ended: the state to draw from and the first position it has not told."""

    source: _Source
    popsize: int
    cursor: int
    generation: int


def _replay(
    x: np.ndarray,
    f: np.ndarray,
    axes: _Axes,
    seed: int,
    separable: bool,
    n_active: int,
    violation: np.ndarray | None = None,
) -> _Replay:
    """Tell the history's complete blocks, in order, to a fresh strategy. Pure.

    ``x`` (N, d) are the trials on the unit cube in trial order; ``f`` their ranking keys (lower
    is better, +inf failed, NaN still active); ``violation`` how far each broke the constraints.
    """
    dim = x.shape[1]
    popsize0 = popsize = default_popsize(dim)
    strategy = _Strategy(_Constants.of(dim, popsize, separable))
    source = strategy.source(axes)
    cursor = generation = 0
    total = len(x)
    while cursor + popsize <= total:
        keys = f[cursor : cursor + popsize]
        active = np.isnan(keys)
        if active.any():
            if total - (cursor + popsize) < 2 * popsize + n_active:
                break
            keys = np.where(active, np.inf, keys)
        if np.isfinite(keys).any():
            block = None if violation is None else violation[cursor : cursor + popsize]
            strategy.tell(x[cursor : cursor + popsize], keys, source, block)
        cursor += popsize
        generation += 1
        if strategy.exhausted():
            popsize = min(2 * popsize, _MAX_RESTART_FACTOR * popsize0)
            strategy = _Strategy(_Constants.of(dim, popsize, separable))
        source = strategy.source(axes)
    return _Replay(source, popsize, cursor, generation)


class CMAESSampler:
    """CMA-ES (sep-CMA-ES from ``SEP_CMA_DIM`` parameters), replayed from the history."""

    name = "cmaes"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *, minimize: bool, seed: int
    ) -> list[dict[str, Any]]:
        """``n`` new parameter dicts. Pure: the same arguments give the same proposals."""
        if n < 0:
            raise ValueError(f"CMAESSampler.suggest: n={n!r} is negative; pass a count >= 0")
        if n == 0:
            return []
        if space.dim == 0:
            return [{} for _ in range(n)]
        trials = as_trials(trials)
        x, f, taken = _positions(space, trials, minimize)
        axes = _Axes.of(space)
        n_active = int(np.isnan(f).sum())
        violation = np.array([t.violation or 0.0 for t in _kept(space, trials)])
        replay = _replay(x, f, axes, seed, space.dim >= SEP_CMA_DIM, n_active, violation)
        draws: dict[int, np.ndarray] = {}
        out = []
        for i in range(n):
            offset = len(x) + i - replay.cursor
            generation = replay.generation + offset // replay.popsize
            member = offset % replay.popsize
            if generation not in draws:
                draws[generation] = _first_draws(seed, generation, replay.popsize, space.dim)
            params = _draw(
                space, replay.source, draws[generation][member], taken, (seed, generation, member)
            )
            if params is None:
                params = fill_unseen(space, taken, 1, rng_for(seed, trials, salt=_SALT + i))[0]
            taken.add(space.key(params))
            out.append(params)
        return out


def _positions(
    space: Space, trials: Sequence[Trial], minimize: bool
) -> tuple[np.ndarray, np.ndarray, set[tuple[Any, ...]]]:
    """Trials in number order as (points on the unit cube, ranking keys, taken keys).

    Keys: the sign-flipped value (lower is better), +inf for a finished trial without one, NaN
    for a Pending or Running one. Skips what ``history_of`` skips: Lost trials and trials whose
    params do not fit the space.
    """
    sign = 1.0 if minimize else -1.0
    rows, keys, taken = [], [], set()
    for t in _kept(space, trials):
        taken.add(space.key(t.params))
        rows.append(space.to_unit(t.params))
        if t.state.is_active:
            keys.append(math.nan)
        elif t.has_value:
            keys.append(sign * float(t.value))  # type: ignore[arg-type]
        else:
            keys.append(math.inf)
    x = np.array(rows, dtype=float).reshape(-1, space.dim)
    # An axis a trial left inactive (conditional space) reads as the cube's centre: the search
    # distribution spans every axis, and an inactive one does not change the configuration.
    return np.nan_to_num(x, nan=0.5), np.array(keys, dtype=float), taken


def _kept(space: Space, trials: Sequence[Trial]) -> list[Trial]:
    """The trials the replay reads, in number order: not Lost, and with params that fit."""
    return [
        t for t in sorted(trials, key=lambda t: t.number)
        if t.state is not TrialState.LOST and space.contains(t.params)
    ]


def _draw(
    space: Space,
    source: _Source,
    z: np.ndarray,
    taken: set[tuple[Any, ...]],
    key: tuple[int, int, int],
) -> dict[str, Any] | None:
    """The draw of ``z`` from ``source``, or, when its configuration is taken, further draws
    (at the source's spread, then wider) from a stream keyed by (seed, generation, member);
    None when all of them are taken."""
    params = space.from_unit(source.points(z[None, :])[0])
    if space.key(params) not in taken:
        return params
    seed, generation, member = key
    stream = np.random.default_rng([int(seed) & 0xFFFFFFFF, _SALT, generation, member])
    for attempt in range(1, _FRESH_TRIES + _WIDEN_TRIES):
        factor = 2.0 ** max(0, attempt - _FRESH_TRIES + 1)
        u = source.points(stream.standard_normal((1, space.dim)), factor)[0]
        params = space.from_unit(u)
        if space.key(params) not in taken:
            return params
    return None
