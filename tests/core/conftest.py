"""Hypothesis strategies for search-space parameters and whole study specs, shared by the space
and spec tests as session fixtures (draw them with ``data.draw(...)``)."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from kubetune.core.space import env_var_name
from kubetune.core.spec import MAX_SEED

PARAM_NAMES = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,20}\Z")


@st.composite
def float_params(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["linear", "log", "step"]))
    if kind == "linear":
        low = draw(st.floats(-1e6, 1e6))
        high = low + draw(st.floats(1e-3, 1e6))
        return {"type": "float", "low": low, "high": high}
    if kind == "log":
        low = draw(st.floats(1e-8, 1e3))
        return {"type": "float", "low": low, "high": low * draw(st.floats(1.01, 1e6)), "log": True}
    # A lattice as a person writes it: decimals with up to 4 digits after the point.
    scale = 10 ** draw(st.integers(0, 4))
    a = draw(st.integers(-(10**5), 10**5))
    b = draw(st.integers(1, 10**4))
    n = draw(st.integers(1, 1000))
    return {"type": "float", "low": a / scale, "high": (a + n * b) / scale, "step": b / scale}


@st.composite
def int_params(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["linear", "log", "step", "wide-log"]))
    if kind == "linear":
        low = draw(st.integers(-(10**6), 10**6))
        return {"type": "int", "low": low, "high": low + draw(st.integers(1, 10**6))}
    if kind == "step":
        low, step = draw(st.integers(-1000, 1000)), draw(st.integers(2, 100))
        return {
            "type": "int",
            "low": low,
            "high": low + step * draw(st.integers(1, 1000)),
            "step": step,
        }
    low = draw(st.integers(1, 10**4))
    top = 10**11 if kind == "wide-log" else 10**6
    return {"type": "int", "low": low, "high": low + draw(st.integers(1, top)), "log": True}


def _categorical_key(v: object) -> tuple:
    if isinstance(v, bool | str):
        return (type(v).__name__, v)
    return ("number", float(v))


categorical_values = st.lists(
    st.one_of(
        st.text(max_size=12),
        st.integers(-1000, 1000),
        st.floats(-1e6, 1e6, allow_nan=False),
        st.booleans(),
    ),
    min_size=1,
    max_size=20,
    unique_by=_categorical_key,
)
categorical_params = categorical_values.map(lambda vs: {"type": "categorical", "values": vs})
param_dicts_strategy = st.one_of(float_params(), int_params(), categorical_params)


@st.composite
def spec_dicts_strategy(draw: st.DrawFn) -> dict:
    """A valid TuningStudy .spec, camelCase, as a user would write it."""
    names = draw(st.lists(PARAM_NAMES, min_size=1, max_size=6, unique_by=env_var_name))
    space = {name: draw(param_dicts_strategy) for name in names}
    continuous = any(p["type"] == "float" and "step" not in p for p in space.values())
    algorithms = ["auto", "random", "sobol", "tpe", "gp", "cmaes"] + (
        [] if continuous else ["grid"]
    )
    max_trials = draw(st.integers(1, 10_000))
    spec: dict = {
        "objective": {
            "metric": draw(st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_./-]{0,30}\Z")),
            "direction": draw(st.sampled_from(["minimize", "maximize"])),
        },
        "searchSpace": space,
        "algorithm": {"name": draw(st.sampled_from(algorithms))},
        "budget": {
            "maxTrials": max_trials,
            "parallelism": draw(st.integers(1, min(max_trials, 1000))),
        },
        "jobTemplate": {
            "spec": {"template": {"spec": {"containers": [{"name": "t", "image": "x"}]}}}
        },
    }
    if draw(st.booleans()):
        spec["objective"]["goal"] = draw(st.floats(-1e6, 1e6))
    if draw(st.booleans()):
        spec["algorithm"]["seed"] = draw(st.integers(0, MAX_SEED))
    if draw(st.booleans()):
        min_step = draw(st.integers(1, 100))
        spec["earlyStopping"] = {
            "name": draw(st.sampled_from(["median", "asha"])),
            "minStep": min_step,
            "maxStep": min_step + draw(st.integers(1, 1000)),
            "reductionFactor": draw(st.integers(2, 10)),
        }
    return spec


@pytest.fixture(scope="session")
def param_dicts() -> st.SearchStrategy[dict]:
    """One ``searchSpace`` entry that the spec accepts."""
    return param_dicts_strategy


@pytest.fixture(scope="session")
def spec_dicts() -> st.SearchStrategy[dict]:
    """A whole valid ``.spec``."""
    return spec_dicts_strategy()
