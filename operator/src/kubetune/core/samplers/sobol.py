"""Quasi-random search: a scrambled Sobol sequence, which fills the cube more evenly than random.

Purely computational. The sequence is ``scipy.stats.qmc.Sobol(d, scramble=True)`` seeded with the
study's seed, so every call sees the same sequence. A proposal is the next points of that sequence
whose configuration no trial holds yet (Pending, Running and finished trials count; Lost ones do
not): the first trial gets point 0, the second point 1, and so on, and a restarted operator
proposes exactly the same points. In a discrete space several points map to one configuration;
those are skipped too, and when the sequence stops finding new ones the rest come from
``fill_unseen``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kubetune.core.samplers.base import history_of, rng_for
from kubetune.core.samplers.random import fill_unseen
from kubetune.core.space import Space
from kubetune.core.trials import Trial

if TYPE_CHECKING:
    from scipy.stats import qmc

__all__ = ["SobolSampler"]

# Points of the sequence scanned per wanted proposal (beyond those the history took) before
# giving up on it; only small discrete spaces get there.
_SCAN_FACTOR = 64


def _engine(dim: int, seed: int) -> qmc.Sobol:
    from scipy.stats import qmc  # scipy.stats is slow to import; load it only when used

    return qmc.Sobol(dim, scramble=True, rng=np.random.default_rng(int(seed) % (1 << 64)))


class SobolSampler:
    """The scrambled Sobol sequence, skipping points whose configuration is already taken."""

    name = "sobol"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *, minimize: bool, seed: int
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if n <= 0:
            return out
        taken = set(history_of(space, trials, minimize=minimize).seen)
        engine = _engine(space.dim, seed)
        limit = len(taken) + _SCAN_FACTOR * n
        # Draw in powers of two, which keeps the sequence's balance (and scipy quiet).
        block = 1 << max(0, math.ceil(math.log2(len(taken) + n)))
        scanned = 0
        while len(out) < n and scanned < limit:
            points = engine.random(block)
            scanned += block
            block = scanned  # the total stays a power of two
            for u in points:
                params = space.from_unit(u)
                key = space.key(params)
                if key not in taken:
                    taken.add(key)
                    out.append(params)
                    if len(out) == n:
                        break
        if len(out) < n:
            out.extend(fill_unseen(space, taken, n - len(out), rng_for(seed, trials, salt=1)))
        return out
