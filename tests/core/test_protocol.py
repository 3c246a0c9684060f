"""The pod-annotation metric protocol: round trips, malformed inputs, curve thinning."""

from __future__ import annotations

import itertools
import json
import math
from bisect import bisect_right
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubetune.core import protocol
from kubetune.core.protocol import (
    MAX_CURVE_POINTS,
    MAX_RESULT_BYTES,
    METRIC_INVALID,
    METRIC_MISSING,
    METRIC_NOT_FINITE,
    PARAMS_INVALID,
    RESULT_INVALID,
    MetricsReport,
    ProtocolError,
    TrialResult,
    append_point,
    encode_curve,
    encode_metrics,
    encode_params,
    encode_result,
    parse_curve,
    parse_metrics,
    parse_params,
    parse_result,
    thin_curve,
)
from kubetune.core.trials import Trial, TrialState

fast = settings(deadline=None, max_examples=120)
finite = st.floats(allow_nan=False, allow_infinity=False)
metric_names = st.text(min_size=1, max_size=20)
steps = st.integers(0, 2**53)


def test_annotation_keys():
    assert protocol.METRICS_ANNOTATION == "kubetune.dev/metrics"
    assert protocol.CURVE_ANNOTATION == "kubetune.dev/curve"
    assert protocol.RESULT_ANNOTATION == "kubetune.dev/result"
    assert protocol.PARAMS_ANNOTATION == "kubetune.dev/params"


# ---- metrics ----------------------------------------------------------------------------------


@fast
@given(
    step=steps,
    metrics=st.dictionaries(metric_names, finite, min_size=1, max_size=8),
    final=st.booleans(),
)
def test_metrics_round_trip(step, metrics, final):
    text = encode_metrics(step, metrics, final)
    assert json.loads(text)["step"] == step
    assert parse_metrics(text) == MetricsReport(step, metrics, final)


def test_metrics_format_is_the_documented_one():
    text = encode_metrics(3, {"val_loss": 0.41})
    assert json.loads(text) == {"step": 3, "metrics": {"val_loss": 0.41}, "final": False}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        "null",
        '"step"',
        '{"metrics": {"a": 1}}',
        '{"step": -1, "metrics": {"a": 1}}',
        '{"step": 1.5, "metrics": {"a": 1}}',
        '{"step": true, "metrics": {"a": 1}}',
        '{"step": "3", "metrics": {"a": 1}}',
        '{"step": 1, "metrics": [1]}',
        '{"step": 1, "metrics": {"a": "0.5"}}',
        '{"step": 1, "metrics": {"a": null}}',
        '{"step": 1, "metrics": {"a": true}}',
        '{"step": 1, "metrics": {"a": [1]}}',
        '{"step": 1, "metrics": {"a": 1}, "final": "yes"}',
        "[" * 100_000,
        " " * (65 * 1024),
    ],
)
def test_malformed_metrics_are_invalid(text):
    with pytest.raises(ProtocolError) as info:
        parse_metrics(text)
    assert info.value.reason == METRIC_INVALID


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 400])
def test_non_finite_metrics(bad):
    text = f'{{"step": 2, "metrics": {{"loss": {bad}, "acc": 0.5}}}}'
    with pytest.raises(ProtocolError) as info:
        parse_metrics(text)
    assert info.value.reason == METRIC_NOT_FINITE
    with pytest.raises(ProtocolError) as info:
        parse_metrics(text, metric="loss")
    assert info.value.reason == METRIC_NOT_FINITE
    # a diverged auxiliary metric does not fail a trial whose objective is fine
    assert parse_metrics(text, metric="acc").metrics["acc"] == 0.5


def test_nan_goes_out_so_that_the_operator_can_tell():
    text = encode_metrics(1, {"loss": math.nan})
    with pytest.raises(ProtocolError) as info:
        parse_metrics(text)
    assert info.value.reason == METRIC_NOT_FINITE


def test_missing_objective_and_missing_annotation():
    with pytest.raises(ProtocolError) as info:
        parse_metrics(encode_metrics(1, {"acc": 0.9}), metric="loss")
    assert info.value.reason == METRIC_MISSING
    assert "loss" in str(info.value)
    with pytest.raises(ProtocolError) as info:
        parse_metrics(None)
    assert info.value.reason == METRIC_MISSING


@pytest.mark.parametrize(
    ("step", "metrics"),
    [
        (-1, {"a": 1.0}),
        (1.5, {"a": 1.0}),
        (True, {"a": 1.0}),
        (1, {}),
        (1, {"a": "x"}),
        (1, {"a": True}),
        (1, {"": 1.0}),
        (1, {f"m{i}": 1.0 for i in range(129)}),
    ],
)
def test_encode_metrics_refuses_what_cannot_be_sent(step, metrics):
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        encode_metrics(step, metrics)


# ---- curve thinning ---------------------------------------------------------------------------


def best_so_far(curve, minimize):
    """s -> best value at steps <= s, as the stopping rules read it."""
    steps, bests, best = [], [], None
    for s, v in sorted(curve, key=lambda p: p[0]):
        best = v if best is None else (min(best, v) if minimize else max(best, v))
        steps.append(s)
        bests.append(best)

    def at(s):
        i = bisect_right(steps, s)
        return bests[i - 1] if i else None

    return at


def is_subsequence(small, big):
    it = iter(big)
    return all(any(p == q for q in it) for p in small)


curves = st.lists(st.tuples(st.integers(0, 500), st.floats(-1e6, 1e6)), max_size=600)
monotone = st.integers(450, 900).map(lambda n: [(i, 1.0 / (i + 1)) for i in range(n)])


@fast
@given(points=curves, minimize=st.booleans(), limit=st.integers(2, 250))
def test_thinning_bounds_and_keeps_first_last_and_running_best(points, minimize, limit):
    thin = thin_curve(points, limit, minimize=minimize)
    full = sorted(points, key=lambda p: p[0])
    assert len(thin) <= limit
    assert len(thin) == min(limit, len(full))
    assert is_subsequence(thin, full)
    assert [s for s, _ in thin] == sorted(s for s, _ in thin)
    if not full:
        return
    assert thin[0] == full[0]
    assert thin[-1] == full[-1]
    b_full, b_thin = best_so_far(full, minimize), best_so_far(thin, minimize)
    sign = 1 if minimize else -1
    improving = [p for i, p in enumerate(full) if all(sign * p[1] < sign * q[1] for q in full[:i])]
    if len(improving) + 1 <= limit:
        for s in range(full[0][0], full[-1][0] + 2):
            assert b_thin(s) == b_full(s), s
    else:
        # the most recent improvements are kept: exact from the oldest one kept on
        kept = [s for s, v in thin[1:] if (s, v) in improving and (s, v) != full[0]]
        for s in range(min(kept, default=full[-1][0] + 2), full[-1][0] + 2):
            assert b_thin(s) == b_full(s), s


@fast
@given(points=curves, minimize=st.booleans())
def test_thinning_is_idempotent_and_a_no_op_when_short(points, minimize):
    thin = thin_curve(points, minimize=minimize)
    assert thin_curve(thin, minimize=minimize) == thin
    if len(points) <= MAX_CURVE_POINTS:
        assert thin == sorted(points, key=lambda p: p[0])


@fast
@given(points=curves, minimize=st.booleans())
def test_incremental_thinning_keeps_the_running_best(points, minimize):
    curve: list = []
    for s, v in points:
        curve = append_point(curve, s, v, minimize=minimize)
        assert len(curve) <= MAX_CURVE_POINTS
    full = sorted(points, key=lambda p: p[0])
    sign = 1 if minimize else -1
    improving = [p for i, p in enumerate(full) if all(sign * p[1] < sign * q[1] for q in full[:i])]
    if not full or len(improving) + 1 > MAX_CURVE_POINTS:
        return
    assert curve[0] == full[0]
    assert curve[-1] == full[-1]
    b_full, b_thin = best_so_far(full, minimize), best_so_far(curve, minimize)
    for s in {p[0] for p in full} | {p[0] + 1 for p in full}:
        assert b_thin(s) == b_full(s)


@fast
@given(points=monotone, rf=st.integers(2, 4))
def test_keep_steps_hold_the_rungs_when_improvements_overflow(points, rf):
    rungs = [rf**k for k in range(10) if rf**k < len(points) - 250]
    thin = thin_curve(points, minimize=True, keep_steps=rungs)
    assert len(thin) == MAX_CURVE_POINTS
    b_full, b_thin = best_so_far(points, True), best_so_far(thin, True)
    assert [b_thin(r) for r in rungs] == [b_full(r) for r in rungs]
    last_kept = len(points) - (MAX_CURVE_POINTS - 1 - len(rungs))
    assert all(b_thin(s) == b_full(s) for s in range(last_kept, len(points)))
    # without the rungs, the oldest improvements go: the thinned best reads worse there
    plain = thin_curve(points, minimize=True)
    assert best_so_far(plain, True)(rungs[-1]) > b_full(rungs[-1])


def test_evenly_spaced_fill_when_there_is_room():
    # a flat curve improves once: the other 198 slots spread over the whole run
    points = [(i, 1.0) for i in range(1000)]
    thin = thin_curve(points, minimize=True)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(thin)]
    assert len(thin) == MAX_CURVE_POINTS
    assert max(gaps) <= 2 * min(gaps) + 1


def test_non_finite_points_are_left_out_and_bad_steps_refused():
    assert thin_curve([(0, 1.0), (1, math.nan), (2, math.inf), (3, 0.5)], minimize=True) == [
        (0, 1.0),
        (3, 0.5),
    ]
    for bad in [(-1, 1.0), (1.5, 1.0), (True, 1.0), (1, "x")]:
        with pytest.raises(ValueError):  # noqa: PT011
            thin_curve([bad], minimize=True)
    with pytest.raises(ValueError, match="limit"):
        thin_curve([], 1, minimize=True)


def test_repeated_steps_sort_stably():
    thin = thin_curve([(5, 3.0), (1, 2.0), (5, 1.0)], minimize=True)
    assert thin == [(1, 2.0), (5, 3.0), (5, 1.0)]


@settings(deadline=None, max_examples=30)
@given(
    curves_=st.lists(
        st.lists(st.tuples(st.integers(1, 400), st.floats(0, 10)), min_size=1, max_size=500),
        min_size=6,
        max_size=10,
    ),
    minimize=st.booleans(),
)
def test_stopping_rules_decide_the_same_on_thinned_curves(curves_, minimize):
    stopping = pytest.importorskip("kubetune.core.stopping")

    def trials(thinned):
        out = []
        for n, c in enumerate(curves_):
            curve = thin_curve(c, minimize=minimize) if thinned else sorted(c, key=lambda p: p[0])
            state = TrialState.RUNNING if n % 2 else TrialState.SUCCEEDED
            out.append(Trial(n, {}, state, curve=tuple(curve)))
        return out

    for rule in (stopping.median_stops, stopping.asha_stops):
        asha = rule is stopping.asha_stops
        kwargs = {"min_step": 1, "max_step": None} if asha else {"min_trials": 2}
        full = rule(trials(False), minimize=minimize, **kwargs)
        thin = rule(trials(True), minimize=minimize, **kwargs)
        assert [p.number for p in thin] == [p.number for p in full]


# ---- curve annotation ---------------------------------------------------------------------------


@fast
@given(points=curves, minimize=st.booleans())
def test_curve_round_trip(points, minimize):
    thin = thin_curve(points, minimize=minimize)
    assert parse_curve(encode_curve(thin)) == thin


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{}", METRIC_INVALID),
        ("[[1]]", METRIC_INVALID),
        ("[[1, 2, 3]]", METRIC_INVALID),
        ('[["1", 2]]', METRIC_INVALID),
        ("[[1.5, 2]]", METRIC_INVALID),
        ("[[-1, 2]]", METRIC_INVALID),
        ('[[1, "2"]]', METRIC_INVALID),
        ("[[2, 1], [1, 1]]", METRIC_INVALID),
        ("[[1, NaN]]", METRIC_NOT_FINITE),
        ("[[1, -Infinity]]", METRIC_NOT_FINITE),
        ("not json", METRIC_INVALID),
    ],
)
def test_malformed_curves(text, reason):
    with pytest.raises(ProtocolError) as info:
        parse_curve(text)
    assert info.value.reason == reason


def test_encode_curve_wants_a_thinned_finite_curve():
    with pytest.raises(ValueError, match="thin"):
        encode_curve([(i, 1.0) for i in range(201)])
    with pytest.raises(ValueError, match="finite"):
        encode_curve([(1, math.nan)])


# ---- results ------------------------------------------------------------------------------------


results = st.builds(
    TrialResult,
    state=st.sampled_from(
        [TrialState.SUCCEEDED, TrialState.FAILED, TrialState.PRUNED, TrialState.STOPPED]
    ),
    reason=st.none() | st.from_regex(r"\A[A-Z][A-Za-z0-9]{0,20}\Z"),
    value=st.none() | finite,
    step=st.none() | steps,
    curve=curves.map(lambda c: tuple(thin_curve(c, minimize=True))),
    message=st.none() | st.text(max_size=300),
)


@fast
@given(result=results)
def test_result_round_trip(result):
    text = encode_result(result)
    assert len(text.encode()) <= MAX_RESULT_BYTES
    assert parse_result(text) == result


def test_worst_case_result_stays_under_16_kib():
    curve = tuple((2**53 - 200 + i, -1.2345678901234567e-308) for i in range(200))
    for message in ("\x00" * 5000, "\U0001f600" * 5000, "a" * 5000):
        result = TrialResult(
            TrialState.FAILED, "MetricNotFinite", -1.2345678901234567e-308, 2**53, curve, message
        )
        text = encode_result(result)
        assert len(text.encode()) <= MAX_RESULT_BYTES
        back = parse_result(text)
        assert back.curve == curve
        assert back.message.endswith("...")


@pytest.mark.parametrize(
    "result",
    [
        TrialResult(TrialState.RUNNING),
        TrialResult(TrialState.LOST),
        TrialResult(TrialState.SUCCEEDED, value=math.nan),
        TrialResult(TrialState.SUCCEEDED, reason="not camel"),
        TrialResult(TrialState.SUCCEEDED, step=-1),
        TrialResult(TrialState.SUCCEEDED, curve=tuple((i, 0.0) for i in range(201))),
    ],
)
def test_encode_result_refuses_what_is_out_of_shape(result):
    with pytest.raises(ValueError):  # noqa: PT011
        encode_result(result)


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{}",
        '{"state": "Running"}',
        '{"state": "Exploded"}',
        '{"state": "Failed", "reason": 3}',
        '{"state": "Failed", "value": NaN}',
        '{"state": "Failed", "value": "1"}',
        '{"state": "Failed", "step": -2}',
        '{"state": "Failed", "message": 1}',
        '{"state": "Failed", "curve": [[1, NaN]]}',
        '{"state": "Failed", "curve": "x"}',
        "nope",
    ],
)
def test_malformed_results(text):
    with pytest.raises(ProtocolError) as info:
        parse_result(text)
    assert info.value.reason == RESULT_INVALID


def test_result_format():
    text = encode_result(
        TrialResult(TrialState.PRUNED, "Asha", 0.3, 9, ((1, 0.5), (9, 0.3)), "rung 9")
    )
    assert json.loads(text) == {
        "state": "Pruned",
        "reason": "Asha",
        "value": 0.3,
        "step": 9,
        "curve": [[1, 0.5], [9, 0.3]],
        "message": "rung 9",
    }
    assert parse_result('{"state": "Failed"}') == TrialResult(TrialState.FAILED)


# ---- params -------------------------------------------------------------------------------------

param_values = st.one_of(
    st.text(max_size=30), st.integers(-(10**15), 10**15), finite, st.booleans()
)


@fast
@given(params=st.dictionaries(st.text(min_size=1, max_size=20), param_values, max_size=10))
def test_params_round_trip_keeping_types_and_order(params):
    back = parse_params(encode_params(params))
    assert back == params
    assert list(back) == list(params)
    assert Counter(type(v) for v in back.values()) == Counter(type(v) for v in params.values())


@pytest.mark.parametrize("params", [{"a": math.nan}, {"a": math.inf}, {"a": None}, {"a": [1]}])
def test_encode_params_refuses_non_scalars(params):
    with pytest.raises(ValueError, match=r"params\.a"):
        encode_params(params)


@pytest.mark.parametrize("text", ["[]", '{"a": null}', '{"a": NaN}', '{"a": {"b": 1}}', "{"])
def test_malformed_params(text):
    with pytest.raises(ProtocolError) as info:
        parse_params(text)
    assert info.value.reason == PARAMS_INVALID
