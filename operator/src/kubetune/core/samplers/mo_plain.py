"""Random, Sobol and grid search for studies with several objectives.

None of them reads results, so the objectives change nothing: each defers to its
single-objective sampler (with ``minimize=True``, which they ignore too), and a study proposes
exactly what it would with one objective and the same seed and history. Purely computational.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubetune.core.objectives import Objective
from kubetune.core.samplers.grid import GridSampler
from kubetune.core.samplers.random import RandomSampler
from kubetune.core.samplers.sobol import SobolSampler
from kubetune.core.space import Space
from kubetune.core.trials import Trial

__all__ = ["MultiGridSampler", "MultiRandomSampler", "MultiSobolSampler"]


class MultiRandomSampler:
    """Uniform random search (``random.RandomSampler``)."""

    name = "random"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *,
        objectives: Sequence[Objective], seed: int,
    ) -> list[dict[str, Any]]:
        return RandomSampler().suggest(space, trials, n, minimize=True, seed=seed)


class MultiSobolSampler:
    """The scrambled Sobol sequence (``sobol.SobolSampler``)."""

    name = "sobol"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *,
        objectives: Sequence[Objective], seed: int,
    ) -> list[dict[str, Any]]:
        return SobolSampler().suggest(space, trials, n, minimize=True, seed=seed)


class MultiGridSampler:
    """Grid search in a seeded order (``grid.GridSampler``); fewer than ``n`` once the grid is
    spent."""

    name = "grid"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *,
        objectives: Sequence[Objective], seed: int,
    ) -> list[dict[str, Any]]:
        return GridSampler().suggest(space, trials, n, minimize=True, seed=seed)
