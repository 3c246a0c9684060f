"""What every sampler shares: the call it answers and the history it learns from.

A sampler is a pure function of (space, trials, n, direction, seed): it holds no state between
calls, so an operator that restarts proposes exactly what it would have proposed. Randomness
comes from ``rng_for(seed, trials)``, which mixes the study's seed with the history's size.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from kubetune.core.objectives import Objective
from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState

__all__ = [
    "History",
    "MultiHistory",
    "MultiSampler",
    "Sampler",
    "history_of",
    "multi_history_of",
    "rng_for",
]


class Sampler(Protocol):
    """Proposes ``n`` new parameter dicts for ``space`` given the trials so far.

    ``minimize`` says the objective's direction. Pending and Running trials are pending points:
    a sampler must spread a batch away from them. A trial's ``violation`` (above 0: it broke a
    constraint) must keep the sampler away from where it was.
    """

    name: str

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *, minimize: bool, seed: int
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class History:
    """A history as arrays on the unit cube.

    ``x``/``y``: finished trials with a finite value (y sign-flipped so that lower is better);
    ``pending``: Pending and Running trials; ``failed``: finished trials without a value
    (Failed, or Pruned before any report), which samplers should avoid repeating;
    ``violation``: per row of ``x``, how far it broke the constraints (0.0 feasible or not
    judged).
    """

    x: np.ndarray
    y: np.ndarray
    pending: np.ndarray
    failed: np.ndarray
    seen: frozenset[tuple[Any, ...]]
    violation: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    @property
    def feasible(self) -> np.ndarray:
        """Per row of ``x``: whether it kept every constraint."""
        return self.violation <= 0.0 if len(self.violation) else np.ones(len(self.y), bool)

    @property
    def n_observed(self) -> int:
        return len(self.y)


def history_of(space: Space, trials: Sequence[Trial], *, minimize: bool) -> History:
    """Split a history into observed, pending and failed points on the unit cube.

    Trials whose params do not fit the space (a spec changed under them) are skipped.
    """
    xs, ys, pending, failed, seen, broke = [], [], [], [], set(), []
    sign = 1.0 if minimize else -1.0
    for t in trials:
        if t.state is TrialState.LOST or not space.contains(t.params):
            continue
        seen.add(space.key(t.params))
        u = space.to_unit(t.params)
        if t.state.is_active:
            pending.append(u)
        elif t.has_value:
            xs.append(u)
            ys.append(sign * float(t.value))  # type: ignore[arg-type]
            broke.append(t.violation or 0.0)
        else:
            failed.append(u)
    d = space.dim

    def arr(rows: list[np.ndarray]) -> np.ndarray:
        return np.array(rows, dtype=float).reshape(-1, d)

    return History(arr(xs), np.array(ys, dtype=float), arr(pending), arr(failed), frozenset(seen),
                   np.array(broke, dtype=float))


class MultiSampler(Protocol):
    """Proposes ``n`` new parameter dicts for a study with several objectives.

    Reads each finished trial's ``values[objective.metric]`` and its ``violation``; pending
    trials are pending points, as for ``Sampler``.
    """

    name: str

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *,
        objectives: Sequence[Objective], seed: int,
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class MultiHistory:
    """A history with several objectives, as arrays on the unit cube.

    ``x``/``y``: finished trials with every objective finite, ``y`` one column per objective,
    sign-flipped so that lower is better on each; ``violation`` per row (0.0: feasible or not
    judged); ``pending``, ``failed`` and ``seen`` as in ``History`` (a finished trial that lacks
    an objective, e.g. Pruned, counts as failed).
    """

    x: np.ndarray
    y: np.ndarray
    violation: np.ndarray
    pending: np.ndarray
    failed: np.ndarray
    seen: frozenset[tuple[Any, ...]]

    @property
    def n_observed(self) -> int:
        return len(self.y)

    @property
    def feasible(self) -> np.ndarray:
        """Per row of ``x``: whether it kept every constraint."""
        return self.violation <= 0.0


def multi_history_of(
    space: Space, trials: Sequence[Trial], objectives: Sequence[Objective]
) -> MultiHistory:
    """Split a history into observed (objective vectors), pending and failed points."""
    xs, ys, broke, pending, failed, seen = [], [], [], [], [], set()
    for t in trials:
        if t.state is TrialState.LOST or not space.contains(t.params):
            continue
        seen.add(space.key(t.params))
        u = space.to_unit(t.params)
        vals = [t.values.get(o.metric) for o in objectives]
        if t.state.is_active:
            pending.append(u)
        elif all(v is not None and math.isfinite(v) for v in vals):
            xs.append(u)
            ys.append([v if o.minimize else -v  # type: ignore[operator]
                       for v, o in zip(vals, objectives, strict=True)])
            broke.append(t.violation or 0.0)
        else:
            failed.append(u)
    d, m = space.dim, len(objectives)

    def arr(rows: list[np.ndarray]) -> np.ndarray:
        return np.array(rows, dtype=float).reshape(-1, d)

    return MultiHistory(arr(xs), np.array(ys, dtype=float).reshape(-1, m),
                        np.array(broke, dtype=float), arr(pending), arr(failed), frozenset(seen))


def rng_for(seed: int, trials: Sequence[Trial], salt: int = 0) -> np.random.Generator:
    """The generator for one call: the same (seed, history size, salt) gives the same draws."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, len(trials), salt])
