"""Random search: independent uniform draws on the unit cube.

Purely computational. Draws come from ``rng_for(seed, trials)``, so the proposal is a pure
function of the seed and the history. A draw that repeats a configuration some trial already
holds (possible only where every parameter is discrete) is redrawn; when a small discrete space
is nearly full the remaining configurations are enumerated and drawn from directly. Only once
every configuration is taken does a proposal repeat one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kubetune.core.samplers.base import history_of, rng_for
from kubetune.core.samplers.grid import iter_grid
from kubetune.core.space import Space
from kubetune.core.trials import Trial

__all__ = ["RandomSampler", "fill_unseen"]

# Redraws per wanted proposal before enumerating what is left: a space where 64 uniform draws in
# a row all hit taken configurations is at least ~94% full, hence small enough to enumerate.
_REDRAWS = 64
# Largest finite space that is enumerated; a bigger one cannot be that full in practice.
_MAX_ENUMERATED = 1 << 20


def fill_unseen(
    space: Space, taken: set[tuple[Any, ...]], count: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """``count`` configurations of a finite ``space`` not in ``taken`` (keys), drawn at random.

    Pure apart from consuming ``rng``; adds what it returns to ``taken``. When fewer than
    ``count`` are left, the rest are uniform draws, which repeat taken configurations.
    """
    out: list[dict[str, Any]] = []
    size = space.size
    if size is not None and size <= _MAX_ENUMERATED:
        left = [p for p in iter_grid(space, 0) if space.key(p) not in taken]
        for i in rng.permutation(len(left))[:count]:
            out.append(left[int(i)])
            taken.add(space.key(left[int(i)]))
    while len(out) < count:
        out.append(space.from_unit(rng.random(space.dim)))
    return out


class RandomSampler:
    """Uniform random search that does not repeat a configuration while another is left."""

    name = "random"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *, minimize: bool, seed: int
    ) -> list[dict[str, Any]]:
        rng = rng_for(seed, trials)
        taken = set(history_of(space, trials, minimize=minimize).seen)
        out: list[dict[str, Any]] = []
        draws = 0
        while len(out) < n and draws < _REDRAWS * n:
            draws += 1
            params = space.from_unit(rng.random(space.dim))
            key = space.key(params)
            if key not in taken:
                taken.add(key)
                out.append(params)
        if len(out) < n:
            out.extend(fill_unseen(space, taken, n - len(out), rng))
        return out
