"""Search-space parameters and their transforms to and from the unit cube.

Purely computational: samplers work on points in [0, 1]^d and this module maps those points to
parameter values and back. Every parameter owns its transform:

- float: linear, or linear in log space when ``log`` is set; with ``step`` the value is snapped
  to ``low + k * step``, rounded to the decimals of ``low``, ``high`` and ``step`` so that a
  lattice of step 0.1 holds 0.3 and not 0.30000000000000004.
- int: like float, then rounded (to ``low + k * step`` with ``step``); the unit interval is cut
  into equal cells, one per admissible value, so every value is equally likely under a uniform
  draw and ``to_unit`` returns the centre of the value's cell.
- categorical: ``k`` equal cells, one per value.

A parameter may be conditional (``when``): active only when each categorical parameter it
names has one of the listed values (parents may be conditional too, to any depth). An inactive
parameter is absent from a configuration: ``from_unit`` leaves it out, ``to_unit`` gives NaN on
its axis (never a number), ``key`` gives None, and ``mask`` marks the inactive axes of points
of the cube. A space without conditions behaves as if the feature did not exist.

``from_unit(to_unit(v)) == v`` holds exactly for every admissible int, categorical and stepped
float value; for a continuous float it holds to within 1e-12 of the range (linear) or of the value
(log), since an affine or exponential map of doubles cannot be inverted bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

__all__ = [
    "CategoricalParam",
    "Condition",
    "FloatParam",
    "IntParam",
    "Param",
    "Space",
    "env_var_name",
]

Value = float | int | str | bool | None


def env_var_name(name: str) -> str:
    """The trial container's variable for parameter ``name``: KUBETUNE_PARAM_<NAME>."""
    return "KUBETUNE_PARAM_" + "".join(c if c.isalnum() else "_" for c in name.upper())


def _decimals(x: float) -> int:
    """Digits after the point in the shortest repr of ``x`` (0 for whole numbers)."""
    exponent = Decimal(repr(float(x))).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _cell(u: float, k: int) -> int:
    """Index of the cell of [0, 1] cut into k equal cells that holds u."""
    return min(k - 1, max(0, math.floor(float(u) * k)))


@dataclass(frozen=True)
class FloatParam:
    """A real-valued parameter in [low, high], optionally log-scaled or stepped."""

    name: str
    low: float
    high: float
    log: bool = False
    step: float | None = None

    kind = "float"

    @property
    def n_values(self) -> int | None:
        """Number of admissible values, or None when continuous."""
        if self.step is None:
            return None
        return round((self.high - self.low) / self.step) + 1

    def _lattice(self, k: int) -> float:
        # low + k * step carries binary noise (0.1 * 3 = 0.30000000000000004); rounding to the
        # decimals the bounds and step were written with gives the value a person would type.
        assert self.step is not None
        digits = max(_decimals(self.low), _decimals(self.high), _decimals(self.step))
        x = round(self.low + k * self.step, digits)
        return float(min(self.high, max(self.low, x)))

    def to_unit(self, value: Any) -> float:
        x = float(value)
        if self.step is not None:
            k = round((x - self.low) / self.step)
            return (k + 0.5) / self.n_values  # type: ignore[operator]
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return (math.log(x) - lo) / (hi - lo)
        return (x - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float:
        u = min(1.0, max(0.0, float(u)))
        if self.step is not None:
            return self._lattice(_cell(u, self.n_values))  # type: ignore[arg-type]
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return min(self.high, max(self.low, math.exp(lo + u * (hi - lo))))
        return min(self.high, max(self.low, self.low + u * (self.high - self.low)))

    def contains(self, value: Any) -> bool:
        try:
            x = float(value)
        except (TypeError, ValueError):
            return False
        if not (self.low <= x <= self.high):
            return False
        if self.step is None:
            return True
        k = (x - self.low) / self.step
        return abs(k - round(k)) < 1e-9 * max(1.0, abs(k))


@dataclass(frozen=True)
class IntParam:
    """An integer parameter in [low, high]; log-scaled, or on the lattice low + k * step."""

    name: str
    low: int
    high: int
    log: bool = False
    step: int = 1

    kind = "int"

    @property
    def n_values(self) -> int:
        return (self.high - self.low) // self.step + 1

    # Log-scaled ints: integer v owns the cell [log(v - 0.5), log(v + 0.5)], normalised, so that a
    # uniform draw in the unit cube is log-uniform over the integers. Edges are computed one at a
    # time: a range of 10**9 integers must not allocate 10**9 floats.
    def _log_scale(self) -> tuple[float, float]:
        lo = math.log(self.low - 0.5)
        return lo, math.log(self.high + 0.5) - lo

    def _log_edge(self, i: int) -> float:
        lo, width = self._log_scale()
        return (math.log(self.low + i - 0.5) - lo) / width

    def to_unit(self, value: Any) -> float:
        v = int(value)
        if self.log and self.step == 1:
            i = v - self.low
            return (self._log_edge(i) + self._log_edge(i + 1)) / 2
        k = (v - self.low) // self.step
        return (k + 0.5) / self.n_values

    def from_unit(self, u: float) -> int:
        u = min(1.0, max(0.0, float(u)))
        if self.log and self.step == 1:
            lo, width = self._log_scale()
            i = math.floor(math.exp(lo + u * width) + 0.5) - self.low
            i = min(self.n_values - 1, max(0, i))
            # exp/log rounding can land one cell off near an edge: settle it on the edges.
            if i > 0 and u < self._log_edge(i):
                i -= 1
            elif i < self.n_values - 1 and u >= self._log_edge(i + 1):
                i += 1
            return int(self.low + i)
        return int(self.low + _cell(u, self.n_values) * self.step)

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                return False
        return bool(self.low <= value <= self.high and (value - self.low) % self.step == 0)


@dataclass(frozen=True)
class CategoricalParam:
    """One of a list of values (strings, numbers or booleans)."""

    name: str
    values: tuple[Value, ...]

    kind = "categorical"

    @property
    def n_values(self) -> int:
        return len(self.values)

    def index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if v == value and type(v) is type(value):
                return i
        for i, v in enumerate(self.values):
            if v == value:
                return i
        raise ValueError(
            f"{value!r} is not one of {list(self.values)!r} for parameter {self.name!r}"
        )

    def to_unit(self, value: Any) -> float:
        return (self.index(value) + 0.5) / self.n_values

    def from_unit(self, u: float) -> Value:
        return self.values[_cell(u, self.n_values)]

    def contains(self, value: Any) -> bool:
        try:
            self.index(value)
        except ValueError:
            return False
        return True


Param = FloatParam | IntParam | CategoricalParam


def _key_part(p: Param, value: Any) -> Any:
    if isinstance(p, CategoricalParam):
        return p.index(value)
    if isinstance(p, IntParam):
        return int(value)
    return float(f"{float(value):.12g}")


def _param_from_mapping(name: str, p: Mapping[str, Any]) -> Param:
    kind = p.get("type")
    if kind == "float":
        step = p.get("step")
        return FloatParam(
            name,
            float(p["low"]),
            float(p["high"]),
            bool(p.get("log", False)),
            None if step is None else float(step),
        )
    if kind == "int":
        return IntParam(
            name, int(p["low"]), int(p["high"]), bool(p.get("log", False)), int(p.get("step") or 1)
        )
    if kind == "categorical":
        return CategoricalParam(name, tuple(p["values"]))
    raise ValueError(
        f"searchSpace.{name}.type: {kind!r} is not a parameter type; use float, int or categorical"
    )


@dataclass(frozen=True)
class Condition:
    """Axis ``param`` is active only where the categorical axis ``parent`` is active and
    holds one of the values whose indices are ``allowed``."""

    param: int
    parent: int
    allowed: frozenset[int]


@dataclass(frozen=True)
class Space:
    """An ordered set of parameters; the order fixes the unit cube's axes. ``conditions``
    make some of them conditional (see the module docstring)."""

    params: tuple[Param, ...]
    conditions: tuple[Condition, ...] = ()

    @classmethod
    def from_search_space(cls, search_space: Mapping[str, Any]) -> Space:
        """Build from a TuningStudy ``spec.searchSpace`` (plain dicts or pydantic models).

        Axes follow the mapping's order, so the same spec always gives the same cube. A
        ``when`` that names an unknown or non-categorical parameter, or a value it cannot take,
        raises ValueError (``parse_spec`` refuses such specs first, naming the field).
        """
        params = []
        whens: list[tuple[int, Mapping[str, Any]]] = []
        for name, p in search_space.items():
            if hasattr(p, "model_dump"):
                p = p.model_dump(by_alias=True, exclude_none=True)
            params.append(_param_from_mapping(name, p))
            if p.get("when"):
                whens.append((len(params) - 1, p["when"]))
        index = {p.name: i for i, p in enumerate(params)}
        conditions = []
        for i, when in whens:
            for parent, values in when.items():
                j = index.get(parent)
                if j is None or j == i or not isinstance(params[j], CategoricalParam):
                    raise ValueError(f"searchSpace.{params[i].name}.when: {parent!r} is not "
                                     "another categorical parameter")
                cat = params[j]
                assert isinstance(cat, CategoricalParam)
                conditions.append(Condition(i, j, frozenset(cat.index(v) for v in values)))
        space = cls(tuple(params), tuple(conditions))
        space.order  # noqa: B018 - refuses a cycle now rather than at the first use
        return space

    @property
    def conditional(self) -> bool:
        return bool(self.conditions)

    @functools.cached_property
    def order(self) -> tuple[int, ...]:
        """Axes with every parent before its children. Raises ValueError on a cycle."""
        parents: dict[int, set[int]] = {}
        for c in self.conditions:
            parents.setdefault(c.param, set()).add(c.parent)
        done: list[int] = []
        placed: set[int] = set()
        pending = list(range(len(self.params)))
        while pending:
            ready = [i for i in pending if parents.get(i, set()) <= placed]
            if not ready:
                cycle = ", ".join(self.params[i].name for i in pending)
                raise ValueError(f"searchSpace: the when conditions of {cycle} form a cycle")
            done += ready
            placed.update(ready)
            pending = [i for i in pending if i not in placed]
        return tuple(done)

    @functools.cached_property
    def _conditions_of(self) -> dict[int, tuple[Condition, ...]]:
        out: dict[int, list[Condition]] = {}
        for c in self.conditions:
            out.setdefault(c.param, []).append(c)
        return {k: tuple(v) for k, v in out.items()}

    def _active(self, index_of: Any) -> list[bool]:
        """Which axes are active, given ``index_of(j)``: the value index of categorical axis j
        (called only for active parents)."""
        active = [True] * len(self.params)
        for i in self.order:
            for c in self._conditions_of.get(i, ()):
                if not active[c.parent] or index_of(c.parent) not in c.allowed:
                    active[i] = False
                    break
        return active

    def active_names(self, values: Mapping[str, Any]) -> frozenset[str]:
        """The parameters active in ``values`` (its parents' values decide; a parent that is
        missing or not one of its values makes its children inactive)."""
        if not self.conditions:
            return self._name_set

        def index_of(j: int) -> int:
            p = self.params[j]
            assert isinstance(p, CategoricalParam)
            try:
                return p.index(values[p.name])
            except (KeyError, ValueError):
                return -1
        return frozenset(p.name for p, on in zip(self.params, self._active(index_of),
                                                 strict=True) if on)

    def prune(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` without the parameters its own choices make inactive."""
        active = self.active_names(values)
        return {k: v for k, v in values.items() if k in active}

    def mask(self, u: np.ndarray) -> np.ndarray:
        """A copy of the points ``u`` (m, d) of the cube with NaN on each point's inactive
        axes: what ``to_unit`` gives for the configurations ``from_unit`` makes of them."""
        out = np.array(u, dtype=float, copy=True)
        if not self.conditions:
            return out
        active = np.ones(out.shape, dtype=bool)
        cells = {}
        for c in self.conditions:
            if c.parent not in cells:
                n = self.params[c.parent].n_values
                assert n is not None
                cells[c.parent] = np.clip(np.floor(np.nan_to_num(out[:, c.parent]) * n), 0,
                                          n - 1).astype(np.int64)
        for i in self.order:
            for c in self._conditions_of.get(i, ()):
                active[:, i] &= active[:, c.parent] & np.isin(cells[c.parent], list(c.allowed))
        out[~active] = np.nan
        return out

    @property
    def dim(self) -> int:
        return len(self.params)

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @functools.cached_property
    def _name_set(self) -> frozenset[str]:
        # Samplers check every trial of a history against the space: build this once.
        return frozenset(self.names)

    def to_unit(self, values: Mapping[str, Any]) -> np.ndarray:
        """Map a parameter dict to a point of the unit cube (NaN on an absent, inactive
        parameter's axis)."""
        if not self.conditions:
            return np.array([p.to_unit(values[p.name]) for p in self.params], dtype=float)
        return np.array([p.to_unit(values[p.name]) if p.name in values else math.nan
                         for p in self.params], dtype=float)

    def from_unit(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """Map a point of the unit cube to a parameter dict, without the parameters that
        point's own choices make inactive."""
        values = {p.name: p.from_unit(x) for p, x in zip(self.params, u, strict=True)
                  if not (isinstance(x, float) and math.isnan(x))}
        return self.prune(values) if self.conditions else values

    def contains(self, values: Mapping[str, Any]) -> bool:
        """Whether ``values`` names exactly this space's parameters that it makes active,
        each admissible."""
        if not self.conditions:
            return values.keys() == self._name_set and all(
                p.contains(values[p.name]) for p in self.params
            )
        if not all(p.contains(values[p.name]) for p in self.params if p.name in values):
            return False
        return values.keys() == self.active_names(values)

    def key(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """A hashable identity of a parameter dict, equal for equal configurations.

        Floats compare on 12 significant digits (not 12 decimals, which would merge every
        learning rate below 1e-12); categoricals on their index, so that ``True`` and ``1``
        stay apart; ints as ints; an absent (inactive) parameter as None.
        """
        return tuple(_key_part(p, values[p.name]) if p.name in values else None
                     for p in self.params)

    @property
    def size(self) -> int | None:
        """Number of distinct configurations (only active parameters count), or None when
        some parameter is continuous."""
        if any(p.n_values is None for p in self.params):
            return None
        return self.combinations([int(p.n_values or 1) for p in self.params])

    def combinations(self, sizes: Sequence[int]) -> int:
        """Distinct configurations when axis j takes ``sizes[j]`` values (categorical axes
        their own number): inactive parameters do not multiply."""
        if not self.conditions:
            return math.prod(sizes)
        parents = {c.parent for c in self.conditions}
        order = self.order

        def count(k: int, chosen: dict[int, int]) -> int:
            if k == len(order):
                return 1
            i = order[k]
            if not all(c.parent in chosen and chosen[c.parent] in c.allowed
                       for c in self._conditions_of.get(i, ())):
                return count(k + 1, chosen)
            n = int(sizes[i])
            if i not in parents:
                return n * count(k + 1, chosen)
            return sum(count(k + 1, {**chosen, i: v}) for v in range(n))
        return count(0, {})
