"""Unit-cube transforms: exact round trips, admissible outputs, equal cells."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubetune.core.space import CategoricalParam, FloatParam, IntParam, Space, env_var_name
from kubetune.core.spec import parse_spec

fast = settings(deadline=None, max_examples=150)
units = st.floats(0.0, 1.0)


def param_of(d: dict):
    return Space.from_search_space({"p": d}).params[0]


def close(a: float, b: float, p) -> bool:
    scale = abs(b) if getattr(p, "log", False) else p.high - p.low
    return abs(a - b) <= 1e-12 * scale


@fast
@given(data=st.data(), u=units)
def test_from_unit_is_always_admissible(data, u, param_dicts):
    p = param_of(data.draw(param_dicts))
    v = p.from_unit(u)
    assert p.contains(v)
    assert 0.0 <= p.to_unit(v) <= 1.0


@fast
@given(data=st.data(), u=units)
def test_round_trip_is_exact_for_discrete_values(data, u, param_dicts):
    p = param_of(data.draw(param_dicts))
    v = p.from_unit(u)
    back = p.from_unit(p.to_unit(v))
    if p.n_values is None:  # a continuous float: exact up to rounding of the map itself
        assert close(back, v, p)
    else:
        assert back == v
        assert type(back) is type(v)


@fast
@given(data=st.data())
def test_every_value_of_a_small_discrete_param_round_trips(data, param_dicts):
    p = param_of(data.draw(param_dicts))
    if p.n_values is None or p.n_values > 2000:
        return
    values = [p.from_unit((k + 0.5) / p.n_values) for k in range(p.n_values)]
    if not getattr(p, "log", False):
        assert len(set(map(repr, values))) == p.n_values  # one value per cell
    for v in values:
        assert p.from_unit(p.to_unit(v)) == v


@fast
@given(
    scale=st.sampled_from([1, 10, 100, 1000]),
    a=st.integers(-1000, 1000),
    b=st.integers(1, 500),
    n=st.integers(1, 200),
    data=st.data(),
)
def test_stepped_floats_hold_the_decimals_a_person_types(scale, a, b, n, data):
    """A lattice of step 0.1 holds 0.3, not 0.30000000000000004, and maps it back to 0.3."""
    p = FloatParam("x", a / scale, (a + n * b) / scale, step=b / scale)
    k = data.draw(st.integers(0, n))
    typed = (a + k * b) / scale  # the double nearest to the decimal a person writes
    assert p.contains(typed)
    assert p.from_unit(p.to_unit(typed)) == typed
    assert p.from_unit((k + 0.5) / (n + 1)) == typed


def test_three_tenths_is_three_tenths():
    p = FloatParam("x", 0.0, 0.3, step=0.1)
    assert [p.from_unit(u) for u in (0.0, 0.3, 0.6, 1.0)] == [0.0, 0.1, 0.2, 0.3]
    assert p.contains(p.from_unit(1.0))


@fast
@given(data=st.data(), us=st.lists(units, min_size=2, max_size=20))
def test_numeric_from_unit_is_monotone(data, us, param_dicts):
    d = data.draw(param_dicts)
    if d["type"] == "categorical":
        return
    p = param_of(d)
    xs = [p.from_unit(u) for u in sorted(us)]
    assert xs == sorted(xs)


@pytest.mark.parametrize(
    ("param", "n"),
    [
        (IntParam("i", 3, 9), 7),
        (IntParam("i", -10, 10, step=5), 5),
        (CategoricalParam("c", ("a", 1, True, 2.5)), 4),
        (FloatParam("f", 0.0, 1.0, step=0.25), 5),
    ],
)
def test_linear_cells_are_equal(param, n):
    """A uniform draw hits every value equally often: cells of width exactly 1/n."""
    grid = (np.arange(n * 1000) + 0.5) / (n * 1000)
    counts: dict = {}
    for u in grid:
        key = repr(param.from_unit(u))
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == n
    assert set(counts.values()) == {1000}


@fast
@given(data=st.data())
def test_uniform_draws_cover_int_and_categorical_cells_evenly(data, param_dicts):
    d = data.draw(param_dicts)
    p = param_of(d)
    if d["type"] == "float" or d.get("log") or p.n_values > 50:
        return
    m = 200
    grid = (np.arange(p.n_values * m) + 0.5) / (p.n_values * m)
    counts: dict = {}
    for u in grid:
        counts[repr(p.from_unit(u))] = counts.get(repr(p.from_unit(u)), 0) + 1
    assert sorted(counts.values()) == [m] * p.n_values


def test_log_int_cells_are_log_uniform():
    p = IntParam("b", 16, 256, log=True)
    width = math.log(256.5) - math.log(15.5)
    for v in (16, 17, 100, 255, 256):
        cell = (math.log(v + 0.5) - math.log(v - 0.5)) / width
        lo, hi = p.to_unit(v) - cell / 2, p.to_unit(v) + cell / 2
        assert p.from_unit(lo + 1e-12) == v
        assert p.from_unit(hi - 1e-12) == v
        assert p.from_unit(lo - 1e-9) == (v - 1 if v > 16 else 16)


def test_wide_log_int_range_needs_no_table():
    p = IntParam("n", 1, 10**12, log=True)
    assert p.from_unit(0.0) == 1
    assert p.from_unit(1.0) == 10**12
    for v in (1, 2, 3, 999, 10**6, 10**12 - 1, 10**12):
        assert p.from_unit(p.to_unit(v)) == v


def test_continuous_float_round_trip_is_close():
    p = FloatParam("lr", 1e-5, 1e-1, log=True)
    for v in (1e-5, 3.3e-4, 0.01, 0.1):
        assert math.isclose(p.from_unit(p.to_unit(v)), v, rel_tol=1e-12)
    assert p.from_unit(0.0) == 1e-5
    assert p.from_unit(1.0) == 0.1


def test_space_round_trip_and_order():
    space = Space.from_search_space(
        {
            "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
            "batch_size": {"type": "int", "low": 16, "high": 256, "step": 16},
            "optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
        }
    )
    assert space.names == ("lr", "batch_size", "optimizer")
    assert space.dim == 3
    assert space.size is None
    values = space.from_unit([0.5, 0.99, 0.2])
    assert values["batch_size"] == 256
    assert values["optimizer"] == "adam"
    assert space.contains(values)
    assert space.from_unit(space.to_unit(values))["batch_size"] == 256
    assert not space.contains({**values, "extra": 1})
    assert not space.contains({"lr": 0.5, "batch_size": 16, "optimizer": "adam"})


def test_space_from_spec_models_equals_space_from_dicts():
    spec = parse_spec(
        {
            "objective": {"metric": "loss", "direction": "minimize"},
            "searchSpace": {
                "lr": {"type": "float", "low": 1.0e-5, "high": 0.1, "log": True},
                "layers": {"type": "int", "low": 1, "high": 8},
                "drop": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
                "act": {"type": "categorical", "values": ["relu", "gelu"]},
            },
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t"}]}}}},
        }
    )
    from_models = Space.from_search_space(spec.search_space)
    from_dicts = Space.from_search_space(
        {k: v.model_dump(by_alias=True, exclude_none=True) for k, v in spec.search_space.items()}
    )
    assert from_models == from_dicts
    assert from_models.params[1] == IntParam("layers", 1, 8)
    assert from_models.size is None


def test_key_tells_tiny_floats_and_bool_from_int_apart():
    space = Space((FloatParam("lr", 1e-20, 1e-10, log=True), CategoricalParam("c", (1, True, "1"))))
    assert space.key({"lr": 1e-15, "c": 1}) != space.key({"lr": 2e-15, "c": 1})
    assert space.key({"lr": 1e-15, "c": 1}) != space.key({"lr": 1e-15, "c": True})
    assert space.key({"lr": 1e-15, "c": True}) == space.key({"lr": 1e-15 * (1 + 1e-15), "c": True})


def test_categorical_prefers_same_type_and_refuses_strangers():
    p = CategoricalParam("c", (1, True, "1", 2.5))
    assert [p.from_unit(p.to_unit(v)) for v in (1, True, "1", 2.5)] == [1, True, "1", 2.5]
    assert type(p.from_unit(p.to_unit(True))) is bool
    assert not p.contains("2.5")
    with pytest.raises(ValueError, match="not one of"):
        p.to_unit("nope")


def test_env_var_name():
    assert env_var_name("batch-size") == "KUBETUNE_PARAM_BATCH_SIZE"
    assert env_var_name("model.lr") == "KUBETUNE_PARAM_MODEL_LR"
    assert env_var_name("lr") == env_var_name("LR")


def test_unknown_type_names_the_field():
    with pytest.raises(ValueError, match=r"searchSpace\.x\.type"):
        Space.from_search_space({"x": {"type": "bool"}})


# ---- conditional parameters (when) --------------------------------------------------------

CONDITIONAL = {
    "opt": {"type": "categorical", "values": ["sgd", "adam"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.9, "step": 0.1, "when": {"opt": ["sgd"]}},
    "nesterov": {"type": "categorical", "values": [True, False], "when": {"opt": ["sgd"]}},
    "dampening": {"type": "int", "low": 0, "high": 2, "when": {"nesterov": [False]}},
    "layers": {"type": "int", "low": 1, "high": 3},
}


def test_an_inactive_parameter_is_absent_and_nan_on_the_cube() -> None:
    space = Space.from_search_space(CONDITIONAL)
    adam = space.from_unit(np.array([0.9, 0.1, 0.1, 0.1, 0.1]))
    assert adam == {"opt": "adam", "layers": 1}
    u = space.to_unit(adam)
    assert np.isnan(u[1:4]).all() and not np.isnan(u[[0, 4]]).any()
    assert space.from_unit(u) == adam and space.key(adam) == (1, None, None, None, 1)
    sgd = space.from_unit(np.array([0.1, 0.1, 0.9, 0.9, 0.9]))
    assert sgd == {"opt": "sgd", "momentum": 0.5, "nesterov": False, "dampening": 2,
                   "layers": 3}
    assert space.contains(adam) and space.contains(sgd)
    assert not space.contains({**adam, "momentum": 0.5})  # inactive, yet given
    assert not space.contains({k: v for k, v in sgd.items() if k != "dampening"})  # active


def test_mask_marks_what_from_unit_leaves_out() -> None:
    space = Space.from_search_space(CONDITIONAL)
    rng = np.random.default_rng(0)
    points = rng.random((200, space.dim))
    masked = space.mask(points)
    for u, m in zip(points, masked, strict=True):
        np.testing.assert_array_equal(np.isnan(m), np.isnan(space.to_unit(space.from_unit(u))))


def test_size_counts_only_valid_combinations() -> None:
    space = Space.from_search_space(CONDITIONAL)
    # sgd: 5 momenta x (nesterov True: 1, False: 3 dampenings) x 3 layers; adam: 3 layers.
    assert space.size == 5 * 4 * 3 + 3
    rng = np.random.default_rng(1)
    seen = {space.key(space.from_unit(u)) for u in rng.random((5000, space.dim))}
    assert len(seen) == space.size


def test_prune_drops_what_a_configurations_own_choices_turn_off() -> None:
    space = Space.from_search_space(CONDITIONAL)
    assert space.prune({"opt": "adam", "momentum": 0.5, "layers": 2}) == {"opt": "adam",
                                                                           "layers": 2}


def test_conditions_that_form_a_cycle_are_refused() -> None:
    with pytest.raises(ValueError, match="form a cycle"):
        Space.from_search_space({
            "a": {"type": "categorical", "values": [1, 2], "when": {"b": ["x"]}},
            "b": {"type": "categorical", "values": ["x", "y"], "when": {"a": [1]}}})
