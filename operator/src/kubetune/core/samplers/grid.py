"""Grid search: every combination of the parameters' values, each tried once (in a
conditional space, every valid combination: an inactive parameter's values do not multiply).

Purely computational. The grid has one axis per parameter:

- categorical: its values;
- int, and float with ``step``: every admissible value;
- float without ``step``: ``FLOAT_GRID_POINTS`` evenly spaced values, endpoints included (evenly
  in log space when ``log`` is set). A TuningStudy cannot ask for this (``parse_spec`` wants a
  step on every float of a grid study); it keeps the sampler total for direct callers.

Grid points are visited in a shuffled order fixed by the seed (an affine permutation of the point
indices, so a grid of any size costs nothing to shuffle): a study stopped early by ``maxTrials``
still covers the whole range of every axis. The proposal is the first points of that order that
no trial has taken yet (Pending, Running and finished trials all count; Lost ones do not), so it
is a pure function of the seed and the history. Once every point is taken the sampler proposes
fewer than ``n`` (none at all), and ``grid_exhausted`` says so, so that a study can end with
reason GridExhausted instead of repeating trials.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from kubetune.core.samplers.base import history_of
from kubetune.core.space import CategoricalParam, FloatParam, Param, Space
from kubetune.core.trials import Trial, TrialState

__all__ = [
    "FLOAT_GRID_POINTS",
    "GridSampler",
    "axis_size",
    "axis_value",
    "grid_exhausted",
    "grid_size",
    "iter_grid",
]

FLOAT_GRID_POINTS = 5


def axis_size(param: Param) -> int:
    """Number of grid values of one parameter."""
    n = param.n_values
    return FLOAT_GRID_POINTS if n is None else n


def axis_value(param: Param, j: int) -> Any:
    """The ``j``-th grid value of one parameter (0 <= j < axis_size(param))."""
    if isinstance(param, CategoricalParam):
        return param.values[j]
    if isinstance(param, FloatParam):
        if param.step is not None:
            return float(param.low + j * param.step)
        if j == 0:
            return float(param.low)
        if j == FLOAT_GRID_POINTS - 1:
            return float(param.high)  # exactly, so exp(log(high)) cannot overshoot the bound
        t = j / (FLOAT_GRID_POINTS - 1)
        if param.log:
            lo, hi = math.log(param.low), math.log(param.high)
            x = math.exp(lo + t * (hi - lo))
        else:
            x = param.low + t * (param.high - param.low)
        return float(f"{x:.12g}")  # 1e-3, not 0.0010000000000000002
    return int(param.low + j * param.step)


def _axis_index(param: Param, value: Any) -> int | None:
    """Index of ``value`` on the parameter's grid axis, or None when it is off the grid."""
    if isinstance(param, CategoricalParam):
        return param.index(value) if param.contains(value) else None
    if not param.contains(value):
        return None
    size = axis_size(param)
    if isinstance(param, FloatParam) and param.step is None:
        # Continuous axis: the nearest grid value, accepted only when it matches.
        u = param.to_unit(value)
        j = min(size - 1, max(0, round(u * (size - 1))))
        target = axis_value(param, j)
        return j if abs(target - float(value)) <= 1e-9 * max(1.0, abs(target)) else None
    j = round((float(value) - param.low) / param.step)  # type: ignore[operator]
    return j if 0 <= j < size else None


def grid_size(space: Space) -> int:
    """Number of grid points of ``space``: combinations of the active parameters' values."""
    return space.combinations([axis_size(p) for p in space.params])


def _point(space: Space, index: int) -> dict[str, Any]:
    """The grid point with mixed-radix ``index`` (first parameter varies fastest)."""
    out = {}
    for p in space.params:
        index, j = divmod(index, axis_size(p))
        out[p.name] = axis_value(p, j)
    return out


def _on_grid(space: Space, params: Mapping[str, Any]) -> bool:
    return all(_axis_index(p, params[p.name]) is not None for p in space.params
               if p.name in params)


def _taken(space: Space, trials: Sequence[Trial]) -> frozenset[tuple[Any, ...]]:
    """Keys of the configurations that trials hold (Lost trials hold none)."""
    return history_of(space, trials, minimize=True).seen


def grid_exhausted(space: Space, trials: Sequence[Trial]) -> bool:
    """Whether every grid point has a trial (Pending, Running or finished; Lost do not count).

    Pure. True means the grid sampler has nothing left to propose.
    """
    on_grid = {
        space.key(t.params)
        for t in trials
        if t.state is not TrialState.LOST and space.contains(t.params) and _on_grid(space, t.params)
    }
    return len(on_grid) >= grid_size(space)


def _visit_order(size: int, seed: int) -> tuple[int, int]:
    """Multiplier and offset of the affine permutation i -> (a * i + b) mod size."""
    if size <= 1:
        return 1, 0
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF, 0x6E1D])
    # Python ints, since a grid may have more points than an int64 holds.
    a = int(rng.integers(1, 2**62)) % size or 1
    while math.gcd(a, size) != 1:
        a = a % size + 1
    b = int(rng.integers(0, 2**62)) % size
    return a, b


def iter_grid(space: Space, seed: int) -> Iterator[dict[str, Any]]:
    """Every grid point once, in the seed's shuffled order. In a conditional space the
    product of all axes is walked and each configuration (inactive parameters left out) is
    given at its first point."""
    size = math.prod(axis_size(p) for p in space.params)
    a, b = _visit_order(size, seed)
    given: set[tuple[Any, ...]] = set()
    for i in range(size):
        point = _point(space, (a * i + b) % size)
        if space.conditional:
            point = space.prune(point)
            key = space.key(point)
            if key in given:
                continue
            given.add(key)
        yield point


class GridSampler:
    """Grid search in a seeded shuffled order, skipping points that trials already hold.

    Returns fewer than ``n`` proposals once the grid runs out (see ``grid_exhausted``).
    """

    name = "grid"

    def suggest(
        self, space: Space, trials: Sequence[Trial], n: int, *, minimize: bool, seed: int
    ) -> list[dict[str, Any]]:
        taken = set(_taken(space, trials))
        out: list[dict[str, Any]] = []
        if n <= 0:
            return out
        for params in iter_grid(space, seed):
            key = space.key(params)
            if key in taken:
                continue
            taken.add(key)
            out.append(params)
            if len(out) == n:
                break
        return out
