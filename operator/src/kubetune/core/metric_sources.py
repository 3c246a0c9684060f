"""Metrics from training code that does not call the SDK (``spec.metricsFrom``). Pure.

Two sources, both read by the operator without anything in the trial's pod:

- the container's termination message (the kubelet copies /dev/termination-log, at most
  4 KiB, into the pod's status when the container ends): a JSON object of name -> number, or
  ``name=value`` lines; read once, when the trial ends, as a report at step 0;
- the container's log, read through the pods/log API: every line that matches the study's
  pattern is a report of the objective, the number in the group ``value``, at the step in the
  group ``step`` (or, without one, the match's position among the matching lines read, from
  1). The last matching line is the trial's value; the matches make its curve, thinned as the
  SDK's curve is.

Readers raise ``protocol.ProtocolError`` with the trial's Failed reason: MetricMissing
(nothing, or no match; the message names what was looked for), MetricInvalid, MetricNotFinite.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable

from kubetune.core import protocol
from kubetune.core.protocol import MetricsReport, Point, ProtocolError

__all__ = ["TERMINATION_MESSAGE", "log_reading", "termination_report"]

TERMINATION_MESSAGE = "termination message"
_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_./-]*)\s*=\s*(\S+)\s*$")


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ProtocolError(protocol.METRIC_INVALID,
                            f"{what}: {text[:80]!r} is not a number") from None


def termination_report(message: str | None, metric: str, container: str) -> MetricsReport:
    """The metrics in ``container``'s termination message, as a report at step 0.

    The objective ``metric`` must be there and finite; other entries that are not numbers are
    left out, as a note beside the metrics does not fail a trial.
    """
    where = f"the {TERMINATION_MESSAGE} of container {container}"
    if not message or not message.strip():
        raise ProtocolError(protocol.METRIC_MISSING, (
            f"{where} is empty: the trainer must write {metric}=<value> or a JSON object to "
            "/dev/termination-log (its terminationMessagePath) before it exits"))
    values: dict[str, float] = {}
    text = message.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ProtocolError(protocol.METRIC_INVALID,
                                f"{where} starts with {{ but is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise ProtocolError(protocol.METRIC_INVALID, f"{where} is not a JSON object")
        for name, v in data.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values[str(name)] = float(v)
            elif name == metric:
                raise ProtocolError(protocol.METRIC_INVALID,
                                    f"{where}: {metric} is {v!r}, not a number")
    else:
        for line in text.splitlines():
            match = _LINE.match(line)
            if match:
                values[match[1]] = _number(match[2], f"{where}: {match[1]}")
    if metric not in values:
        raise ProtocolError(protocol.METRIC_MISSING, (
            f"{where} has no {metric} (it has {sorted(values)[:20]}); write {metric}=<value> "
            "or a JSON object with it"))
    if not math.isfinite(values[metric]):
        raise ProtocolError(protocol.METRIC_NOT_FINITE,
                            f"{where}: {metric} is {values[metric]}")
    return MetricsReport(0, values, final=True)


def log_points(text: str, pattern: re.Pattern[str]) -> list[tuple[int, str]]:
    """(step, number text) of every line of ``text`` that matches ``pattern``, in order."""
    out: list[tuple[int, str]] = []
    for line in text.splitlines():
        match = pattern.search(line)
        if match is None or match.group("value") is None:
            continue
        step_text = match.groupdict().get("step")
        if step_text is not None:
            try:
                step = int(step_text)
            except ValueError:
                raise ProtocolError(protocol.METRIC_INVALID, (
                    f"log line {line[:120]!r}: step {step_text!r} is not a whole number; "
                    "capture digits only, e.g. (?P<step>[0-9]+)")) from None
            if not 0 <= step <= protocol.MAX_STEP:
                raise ProtocolError(protocol.METRIC_INVALID,
                                    f"log line {line[:120]!r}: step {step} is out of range")
        else:
            step = len(out) + 1
        out.append((step, match.group("value")))
    return out


def log_reading(text: str, pattern: str, metric: str, *, minimize: bool,
                keep_steps: Iterable[int] = ()) -> tuple[MetricsReport, tuple[Point, ...]]:
    """The latest report and the thinned curve in a container's log ``text``.

    Raises MetricMissing when no line matches ``pattern``, MetricInvalid when the last match
    is not a number, MetricNotFinite when it is not finite. Earlier matches that are not
    finite numbers are left out of the curve.
    """
    found = log_points(text, re.compile(pattern))
    if not found:
        raise ProtocolError(protocol.METRIC_MISSING, (
            f"no line of the log matches metricsFrom.log.pattern {pattern!r}: print the "
            f"objective {metric} in a line it matches"))
    step, last = found[-1]
    value = _number(last, f"log: {metric} at step {step}")
    if not math.isfinite(value):
        raise ProtocolError(protocol.METRIC_NOT_FINITE, f"log: {metric} is {value} at step {step}")
    points: list[Point] = []
    for s, v in found:
        try:
            number = float(v)
        except ValueError:
            continue
        if math.isfinite(number) and (not points or s > points[-1][0]):
            points.append((s, number))
    curve = protocol.thin_curve(points, minimize=minimize, keep_steps=keep_steps)
    return MetricsReport(step, {metric: value}), tuple(curve)
