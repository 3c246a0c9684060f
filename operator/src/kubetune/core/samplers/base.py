"""What every sampler shares: the call it answers and the history it learns from.

A sampler is a pure function of (space, trials, n, direction, seed): it holds no state between
calls, so an operator that restarts proposes exactly what it would have proposed. Randomness
comes from ``rng_for(seed, trials)``, which mixes the study's seed with the history's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from kubetune.core.space import Space
from kubetune.core.trials import Trial, TrialState

__all__ = ["History", "Sampler", "history_of", "rng_for"]


class Sampler(Protocol):
    """Proposes ``n`` new parameter dicts for ``space`` given the trials so far.

    ``minimize`` says the objective's direction. Pending and Running trials are pending points:
    a sampler must spread a batch away from them.
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
    (Failed, or Pruned before any report), which samplers should avoid repeating.
    """

    x: np.ndarray
    y: np.ndarray
    pending: np.ndarray
    failed: np.ndarray
    seen: frozenset[tuple[Any, ...]]

    @property
    def n_observed(self) -> int:
        return len(self.y)


def history_of(space: Space, trials: Sequence[Trial], *, minimize: bool) -> History:
    """Split a history into observed, pending and failed points on the unit cube.

    Trials whose params do not fit the space (a spec changed under them) are skipped.
    """
    xs, ys, pending, failed, seen = [], [], [], [], set()
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
        else:
            failed.append(u)
    d = space.dim

    def arr(rows: list[np.ndarray]) -> np.ndarray:
        return np.array(rows, dtype=float).reshape(-1, d)

    return History(arr(xs), np.array(ys, dtype=float), arr(pending), arr(failed), frozenset(seen))


def rng_for(seed: int, trials: Sequence[Trial], salt: int = 0) -> np.random.Generator:
    """The generator for one call: the same (seed, history size, salt) gives the same draws."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, len(trials), salt])
