"""The pod-annotation metric protocol (docs/design.md sections 3 and 4), shared by the SDK and the
operator. Pure functions: they build and read annotation values and perform no I/O.

Annotations:

- ``kubetune.dev/metrics`` on the trial's pod: ``{"step": k, "metrics": {...}, "final": false}``,
  the latest report.
- ``kubetune.dev/curve`` on the trial's pod: ``[[step, objective], ...]``, at most 200 points,
  thinned by ``thin_curve``.
- ``kubetune.dev/result`` on the trial's Job, written by the operator when the trial ends:
  state, reason, value, final step, thinned curve and an optional message, under 16 KiB.
- ``kubetune.dev/params`` on the trial's Job: the trial's parameters as a JSON object (the same
  text the container gets as ``KUBETUNE_PARAMS``).

Readers raise ``ProtocolError``, whose ``reason`` is the trial's Failed reason when the trainer
wrote it (MetricMissing, MetricInvalid, MetricNotFinite), or ParamsInvalid / ResultInvalid for
what the operator wrote.

What curve thinning preserves. Write ``b(s)`` for the best objective among the points at steps
``<= s`` (the running best, "best-so-far"). ``thin_curve`` keeps the first and the last point
and every point that strictly improves the running best, so the first step, the last step and
``b(s)`` at every step ``s`` are the same on the thinned curve as on the full one. Those are all
the early-stopping rules read, so they decide the same on either curve. When the improving
points alone outnumber ``limit`` (a loss that improves at each of more than ~200 reports), the
most recent improvements are kept with the first point: ``b(s)`` stays exact for every ``s`` at
or after the oldest improvement kept, and for every step in ``keep_steps``; before that it may
read worse than it was. Points left over are spent on evenly spaced others, for plotting.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetune.core.trials import TrialState

__all__ = [
    "CURVE_ANNOTATION",
    "MAX_CURVE_POINTS",
    "MAX_MESSAGE_LENGTH",
    "MAX_METRICS",
    "MAX_RESULT_BYTES",
    "MAX_RESULT_VALUES",
    "METRICS_ANNOTATION",
    "METRIC_INVALID",
    "METRIC_MISSING",
    "METRIC_NOT_FINITE",
    "PARAMS_ANNOTATION",
    "PARAMS_INVALID",
    "RESULT_ANNOTATION",
    "RESULT_INVALID",
    "MetricsReport",
    "Point",
    "ProtocolError",
    "TrialResult",
    "append_point",
    "encode_curve",
    "encode_metrics",
    "encode_params",
    "encode_result",
    "parse_curve",
    "parse_metrics",
    "parse_params",
    "parse_result",
    "thin_curve",
]

METRICS_ANNOTATION = "kubetune.dev/metrics"
CURVE_ANNOTATION = "kubetune.dev/curve"
RESULT_ANNOTATION = "kubetune.dev/result"
PARAMS_ANNOTATION = "kubetune.dev/params"

METRIC_MISSING = "MetricMissing"
METRIC_INVALID = "MetricInvalid"
METRIC_NOT_FINITE = "MetricNotFinite"
PARAMS_INVALID = "ParamsInvalid"
RESULT_INVALID = "ResultInvalid"

MAX_CURVE_POINTS = 200
MAX_METRICS = 128
MAX_METRIC_NAME_LENGTH = 128
MAX_MESSAGE_LENGTH = 1024
MAX_RESULT_BYTES = 16 * 1024
MAX_RESULT_VALUES = 12  # objectives (4) and constraints (8) of one trial
MAX_STEP = 2**53  # steps stay exact wherever JSON numbers are doubles
MAX_TEXT_BYTES = 64 * 1024  # longer annotation text is refused unread
_REASON = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_RESULT_STATES = frozenset(
    {TrialState.SUCCEEDED, TrialState.FAILED, TrialState.PRUNED, TrialState.STOPPED}
)

Point = tuple[int, float]
"""(step, objective value)."""


class ProtocolError(ValueError):
    """An annotation that cannot be read; ``reason`` is a CamelCase word for conditions."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class MetricsReport:
    """A trainer's latest report: its step, its metrics, and whether it was the last."""

    step: int
    metrics: Mapping[str, float]
    final: bool = False


@dataclass(frozen=True)
class TrialResult:
    """What the operator records on a trial's Job when the trial ends.

    ``value`` is the objective the trial is judged by (None when it has none, e.g. Failed);
    ``step`` the last step it reported; ``curve`` its thinned curve; ``values`` the final
    report's objective and constraint metrics by name, where a study has several (empty
    otherwise).
    """

    state: TrialState
    reason: str | None = None
    value: float | None = None
    step: int | None = None
    curve: tuple[Point, ...] = ()
    message: str | None = None
    values: Mapping[str, float] = field(default_factory=dict)


# ---- metrics --------------------------------------------------------------------------------


def encode_metrics(step: int, metrics: Mapping[str, float], final: bool = False) -> str:
    """The ``kubetune.dev/metrics`` value for one report.

    Non-finite values are written (as JSON's NaN / Infinity extension) so that the operator can
    fail the trial with MetricNotFinite rather than MetricMissing. Raises ValueError for a step
    or metric that cannot be sent.
    """
    _check_step(step, "step")
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValueError(f"metrics: need at least one metric (got {metrics!r}); pass name=value")
    if len(metrics) > MAX_METRICS:
        raise ValueError(
            f"metrics: {len(metrics)} metrics, more than {MAX_METRICS}; report fewer at once"
        )
    out: dict[str, float | int] = {}
    for name, v in metrics.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_METRIC_NAME_LENGTH:
            raise ValueError(
                f"metrics: name {name!r} must be a string of 1 to {MAX_METRIC_NAME_LENGTH} "
                "characters; rename it"
            )
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"metrics.{name}: must be a number (got {v!r}); pass a float")
        out[name] = v
    return json.dumps({"step": step, "metrics": out, "final": bool(final)}, separators=(",", ":"))


def parse_metrics(text: str | None, metric: str | None = None) -> MetricsReport:
    """Read a ``kubetune.dev/metrics`` value.

    Without ``metric`` every value must be finite. With ``metric`` (the study's objective) that
    metric must be present (else MetricMissing) and finite (else MetricNotFinite); the others
    may be anything numeric, as a diverged auxiliary metric does not fail a trial.
    Raises ``ProtocolError``: MetricMissing, MetricInvalid or MetricNotFinite.
    """
    if text is None:
        raise ProtocolError(METRIC_MISSING, f"no {METRICS_ANNOTATION} annotation: nothing reported")
    data = _load(text, METRIC_INVALID, METRICS_ANNOTATION)
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ProtocolError(
            METRIC_INVALID,
            f'{METRICS_ANNOTATION}: expected {{"step": k, "metrics": {{...}}, "final": false}}, '
            f"got {_show(data)}",
        )
    step = data.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise ProtocolError(
            METRIC_INVALID, f"{METRICS_ANNOTATION}: step must be a whole number >= 0, got {step!r}"
        )
    final = data.get("final", False)
    if not isinstance(final, bool):
        raise ProtocolError(
            METRIC_INVALID, f"{METRICS_ANNOTATION}: final must be true or false, got {final!r}"
        )
    values: dict[str, float] = {}
    for name, v in data["metrics"].items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ProtocolError(
                METRIC_INVALID, f"{METRICS_ANNOTATION}: metric {name!r} is not a number: {_show(v)}"
            )
        values[name] = _as_float(v)
    if metric is not None and metric not in values:
        raise ProtocolError(
            METRIC_MISSING,
            f"{METRICS_ANNOTATION}: objective {metric!r} not reported (got {sorted(values)})",
        )
    checked = values if metric is None else {metric: values[metric]}
    for name, v in checked.items():
        if not math.isfinite(v):
            raise ProtocolError(
                METRIC_NOT_FINITE, f"{METRICS_ANNOTATION}: metric {name!r} is {v} at step {step}"
            )
    return MetricsReport(step, values, final)


# ---- curves ---------------------------------------------------------------------------------


def thin_curve(
    points: Iterable[tuple[int, float]],
    limit: int = MAX_CURVE_POINTS,
    *,
    minimize: bool,
    keep_steps: Iterable[int] = (),
) -> list[Point]:
    """At most ``limit`` points of a learning curve, in step order. Pure.

    Points are ordered by step (stably: of two reports of one step, the earlier comes first) and
    non-finite values are left out (they are never a running best; the metrics annotation
    carries them). Kept, in this order of priority: the first and last points; for each step in
    ``keep_steps`` (e.g. ASHA's rungs) the point that sets the running best there; every point
    that improves the running best, the most recent first; then evenly spaced others. See the
    module docstring for what this preserves.
    """
    if limit < 2:
        raise ValueError(
            f"limit: must be at least 2 to keep the first and last points (got {limit})"
        )
    pts = sorted(_clean(points), key=lambda p: p[0])
    n = len(pts)
    if n <= limit:
        return pts
    sign = 1.0 if minimize else -1.0
    improving, best = [], math.inf
    for i, (_, v) in enumerate(pts):
        if sign * v < best:
            improving.append(i)
            best = sign * v
    improving_steps = [pts[i][0] for i in improving]
    witnesses = {
        improving[j - 1] for s in keep_steps if (j := bisect_right(improving_steps, s)) > 0
    }
    chosen = {0, n - 1}
    for i in [*sorted(witnesses, reverse=True), *reversed(improving)]:
        if len(chosen) >= limit:
            break
        chosen.add(i)
    others = [i for i in range(n) if i not in chosen]
    room = limit - len(chosen)
    chosen.update(others[int((j + 0.5) * len(others) / room)] for j in range(room))
    return [pts[i] for i in sorted(chosen)]


def append_point(
    curve: Sequence[tuple[int, float]],
    step: int,
    value: float,
    *,
    minimize: bool,
    limit: int = MAX_CURVE_POINTS,
    keep_steps: Iterable[int] = (),
) -> list[Point]:
    """``curve`` with one more report, thinned again: for a trainer that reports as it goes.

    Thinning a thinned curve after each report keeps the same guarantees as thinning the whole
    curve at once, since the running best of the kept points equals the full one's. Pure.
    """
    return thin_curve([*curve, (step, value)], limit, minimize=minimize, keep_steps=keep_steps)


def encode_curve(curve: Sequence[tuple[int, float]]) -> str:
    """The ``kubetune.dev/curve`` value. The curve must be thinned (at most 200 points)."""
    pts = _clean(curve, strict=True)
    if len(pts) > MAX_CURVE_POINTS:
        raise ValueError(
            f"curve: {len(pts)} points, more than {MAX_CURVE_POINTS}; thin it with thin_curve"
        )
    return json.dumps([list(p) for p in pts], separators=(",", ":"), allow_nan=False)


def parse_curve(text: str) -> list[Point]:
    """Read a ``kubetune.dev/curve`` value: ``[[step, value], ...]`` with steps in order.

    Raises ``ProtocolError``: MetricInvalid, or MetricNotFinite for a non-finite value.
    """
    data = _load(text, METRIC_INVALID, CURVE_ANNOTATION)
    return list(_read_curve(data, CURVE_ANNOTATION, METRIC_INVALID, METRIC_NOT_FINITE))


# ---- results --------------------------------------------------------------------------------


def encode_result(result: TrialResult) -> str:
    """The ``kubetune.dev/result`` value; at most ``MAX_RESULT_BYTES`` of UTF-8.

    A longer message is cut short; anything else out of shape raises ValueError.
    """
    state = TrialState(result.state)
    if state not in _RESULT_STATES:
        raise ValueError(
            f"result.state: {state.value} is not a final state; use one of "
            f"{sorted(s.value for s in _RESULT_STATES)}"
        )
    if result.reason is not None and not _REASON.match(result.reason):
        raise ValueError(f"result.reason: {result.reason!r} is not a CamelCase word of <= 64")
    if result.value is not None and not _finite_number(result.value):
        raise ValueError(f"result.value: {result.value!r} is not a finite number; pass None")
    if result.step is not None:
        _check_step(result.step, "result.step")
    curve = _clean(result.curve, strict=True)
    if len(curve) > MAX_CURVE_POINTS:
        raise ValueError(f"result.curve: {len(curve)} points; thin it to {MAX_CURVE_POINTS}")
    doc: dict[str, Any] = {"state": state.value}
    for key, v in (("reason", result.reason), ("value", result.value), ("step", result.step)):
        if v is not None:
            doc[key] = v
    doc["curve"] = [list(p) for p in curve]
    if result.values:
        if len(result.values) > MAX_RESULT_VALUES:
            raise ValueError(f"result.values: {len(result.values)} metrics; at most "
                             f"{MAX_RESULT_VALUES}")
        for name, v in result.values.items():
            if not (isinstance(name, str) and 0 < len(name) <= MAX_METRIC_NAME_LENGTH):
                raise ValueError(f"result.values: {name!r} is not a metric name")
            if not _finite_number(v):
                raise ValueError(f"result.values[{name!r}]: {v!r} is not a finite number")
        doc["values"] = {k: _as_float(v) for k, v in result.values.items()}
    message = result.message
    if message is not None and len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    while True:
        if message is not None:
            doc["message"] = message
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if len(text.encode()) <= MAX_RESULT_BYTES or not message:
            return text
        message = message[: len(message) // 2] + "..."  # escapes made it long: halve it


def parse_result(text: str) -> TrialResult:
    """Read a ``kubetune.dev/result`` value. Raises ``ProtocolError`` (ResultInvalid)."""
    data = _load(text, RESULT_INVALID, RESULT_ANNOTATION)

    def bad(what: str) -> ProtocolError:
        return ProtocolError(RESULT_INVALID, f"{RESULT_ANNOTATION}: {what}")

    if not isinstance(data, dict):
        raise bad(f"expected a JSON object, got {_show(data)}")
    try:
        state = TrialState(str(data.get("state")))
    except ValueError:
        raise bad(f"state {data.get('state')!r} is not a trial state") from None
    if state not in _RESULT_STATES:
        raise bad(f"state {state.value} is not a final state")
    reason, value, step, message = (data.get(k) for k in ("reason", "value", "step", "message"))
    if reason is not None and not (isinstance(reason, str) and _REASON.match(reason)):
        raise bad(f"reason {_show(reason)} is not a CamelCase word")
    if value is not None and not _finite_number(value):
        raise bad(f"value {_show(value)} is not a finite number")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise bad(f"step {_show(step)} is not a whole number >= 0")
    if message is not None and not isinstance(message, str):
        raise bad(f"message {_show(message)} is not a string")
    curve = _read_curve(data.get("curve", []), RESULT_ANNOTATION, RESULT_INVALID, RESULT_INVALID)
    values = data.get("values", {})
    if not isinstance(values, dict) or len(values) > MAX_RESULT_VALUES or not all(
            isinstance(k, str) and 0 < len(k) <= MAX_METRIC_NAME_LENGTH and _finite_number(v)
            for k, v in values.items()):
        raise bad(f"values {_show(values)} is not an object of at most {MAX_RESULT_VALUES} "
                  "finite numbers by metric name")
    return TrialResult(state, reason, None if value is None else float(value), step, curve,
                       message, {k: _as_float(v) for k, v in values.items()})


# ---- params ---------------------------------------------------------------------------------


def encode_params(params: Mapping[str, Any]) -> str:
    """The ``kubetune.dev/params`` value (and ``KUBETUNE_PARAMS``): a JSON object in the
    search space's order. Raises ValueError for a value that is not a finite scalar."""
    for name, v in params.items():
        if not isinstance(name, str) or not _scalar(v):
            raise ValueError(f"params.{name}: {v!r} is not a string, a finite number or a boolean")
    return json.dumps(dict(params), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_params(text: str) -> dict[str, Any]:
    """Read a ``kubetune.dev/params`` value. Raises ``ProtocolError`` (ParamsInvalid)."""
    data = _load(text, PARAMS_INVALID, PARAMS_ANNOTATION)
    if not isinstance(data, dict) or not all(_scalar(v) for v in data.values()):
        raise ProtocolError(
            PARAMS_INVALID,
            f"{PARAMS_ANNOTATION}: expected an object of strings, finite numbers and booleans, "
            f"got {_show(data)}",
        )
    return data


# ---- shared ---------------------------------------------------------------------------------


def _load(text: Any, reason: str, key: str) -> Any:
    if not isinstance(text, str):
        raise ProtocolError(reason, f"{key}: expected JSON text, got {_show(text)}")
    if len(text) > MAX_TEXT_BYTES:
        raise ProtocolError(reason, f"{key}: {len(text)} characters, over {MAX_TEXT_BYTES}")
    try:
        return json.loads(text)
    except ValueError as err:
        raise ProtocolError(reason, f"{key}: not JSON ({err}): {_show(text)}") from None
    except RecursionError:
        raise ProtocolError(reason, f"{key}: nested too deeply") from None


def _read_curve(data: Any, key: str, invalid: str, not_finite: str) -> tuple[Point, ...]:
    if not isinstance(data, list):
        raise ProtocolError(
            invalid, f"{key}: curve must be a list of [step, value], got {_show(data)}"
        )
    out: list[Point] = []
    for p in data:
        ok = isinstance(p, list) and len(p) == 2
        step, v = p if ok else (None, None)
        if not ok or isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ProtocolError(invalid, f"{key}: {_show(p)} is not a [step >= 0, value] pair")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ProtocolError(invalid, f"{key}: value {_show(v)} at step {step} is not a number")
        if not math.isfinite(_as_float(v)):
            raise ProtocolError(not_finite, f"{key}: value {v} at step {step} is not finite")
        if out and step < out[-1][0]:
            raise ProtocolError(invalid, f"{key}: step {step} comes after step {out[-1][0]}")
        out.append((step, float(v)))
    return tuple(out)


def _clean(points: Iterable[tuple[int, float]], strict: bool = False) -> list[Point]:
    """(step, value) pairs as (int, float); non-finite values dropped, or refused if strict."""
    out = []
    for step, v in points:
        _check_step(step, "curve step")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"curve: value {v!r} at step {step} is not a number")
        x = _as_float(v)
        if math.isfinite(x):
            out.append((int(step), x))
        elif strict:
            raise ValueError(f"curve: value {v!r} at step {step} is not finite; leave it out")
    return out


def _check_step(step: Any, what: str) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise ValueError(f"{what}: must be a whole number from 0 to 2**53 (got {step!r})")


def _as_float(v: int | float) -> float:
    try:
        return float(v)
    except OverflowError:  # an int beyond a double's range
        return math.inf if v > 0 else -math.inf


def _finite_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(_as_float(v))


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, bool)) or _finite_number(v)


def _show(v: Any, limit: int = 80) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."
