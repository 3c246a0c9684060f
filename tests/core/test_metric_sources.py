"""Metrics read from a termination message or a log (core.metric_sources)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubetune.core import metric_sources as sources
from kubetune.core import protocol
from kubetune.core.protocol import ProtocolError

PATTERN = r"epoch (?P<step>[0-9]+) val_loss=(?P<value>[0-9.e+-]+)"


# ---- termination message ------------------------------------------------------------------


@pytest.mark.parametrize("message", [
    '{"val_loss": 0.25, "accuracy": 0.9}',
    "val_loss=0.25\naccuracy=0.9\n",
    "  val_loss = 0.25  \nnote=the dataset was v2 and some words\n",
    '{"val_loss": 0.25, "note": "v2"}',
])
def test_a_termination_message_gives_the_objective(message: str) -> None:
    report = sources.termination_report(message, "val_loss", "trainer")
    assert report.metrics["val_loss"] == 0.25 and report.final and report.step == 0


@pytest.mark.parametrize(("message", "reason", "says"), [
    (None, protocol.METRIC_MISSING, "/dev/termination-log"),
    ("   ", protocol.METRIC_MISSING, "is empty"),
    ("accuracy=0.9", protocol.METRIC_MISSING, "has no val_loss"),
    ('{"accuracy": 0.9}', protocol.METRIC_MISSING, "has no val_loss"),
    ("{val_loss: 1}", protocol.METRIC_INVALID, "not JSON"),
    ("[1, 2]", protocol.METRIC_MISSING, "has no val_loss"),
    ('{"val_loss": "low"}', protocol.METRIC_INVALID, "not a number"),
    ("val_loss=low", protocol.METRIC_INVALID, "not a number"),
    ("val_loss=nan", protocol.METRIC_NOT_FINITE, "nan"),
    ('{"val_loss": Infinity}', protocol.METRIC_NOT_FINITE, "inf"),
])
def test_a_termination_message_without_a_usable_objective_fails(message, reason, says) -> None:
    with pytest.raises(ProtocolError) as e:
        sources.termination_report(message, "val_loss", "trainer")
    assert e.value.reason == reason and says in str(e.value)
    assert "container trainer" in str(e.value)


# ---- log ----------------------------------------------------------------------------------


def test_the_last_match_is_the_value_and_the_matches_are_the_curve() -> None:
    text = ("loading\nepoch 1 val_loss=0.9\nepoch 2 lr=0.1\nepoch 2 val_loss=0.5\n"
            "epoch 3 val_loss=0.7\nsaved\n")
    report, curve = sources.log_reading(text, PATTERN, "val_loss", minimize=True)
    assert (report.step, report.metrics) == (3, {"val_loss": 0.7})
    assert curve == ((1, 0.9), (2, 0.5), (3, 0.7))


def test_without_a_step_group_matches_are_numbered_from_one() -> None:
    text = "loss=3\nnoise\nloss=2\nloss=1\n"
    report, curve = sources.log_reading(text, r"loss=(?P<value>\d+)", "loss", minimize=True)
    assert report.step == 3 and curve == ((1, 3.0), (2, 2.0), (3, 1.0))


def test_steps_that_go_back_stay_out_of_the_curve_but_the_last_line_is_the_value() -> None:
    text = "epoch 1 val_loss=0.9\nepoch 2 val_loss=0.5\nepoch 1 val_loss=0.4\n"
    report, curve = sources.log_reading(text, PATTERN, "val_loss", minimize=True)
    assert report.metrics["val_loss"] == 0.4 and curve == ((1, 0.9), (2, 0.5))


@pytest.mark.parametrize(("text", "reason", "says"), [
    ("", protocol.METRIC_MISSING, PATTERN),
    ("epoch one val_loss=1\n", protocol.METRIC_MISSING, "print the objective val_loss"),
    ("epoch 1 val_loss=1.2.3\n", protocol.METRIC_INVALID, "not a number"),
    ("epoch 1 val_loss=1\nepoch 2 val_loss=1e999\n", protocol.METRIC_NOT_FINITE, "at step 2"),
])
def test_a_log_without_a_usable_last_match_fails(text, reason, says) -> None:
    with pytest.raises(ProtocolError) as e:
        sources.log_reading(text, PATTERN, "val_loss", minimize=True)
    assert e.value.reason == reason and says in str(e.value)


def test_a_step_too_large_is_refused_with_the_line() -> None:
    with pytest.raises(ProtocolError) as e:
        sources.log_reading(f"epoch {2**60} val_loss=1\n", PATTERN, "val_loss", minimize=True)
    assert e.value.reason == protocol.METRIC_INVALID and "out of range" in str(e.value)


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1,
                max_size=600))
def test_a_long_log_is_thinned_as_the_sdk_thins_its_curve(values: list[float]) -> None:
    text = "\n".join(f"epoch {i + 1} val_loss={v!r}" for i, v in enumerate(values))
    report, curve = sources.log_reading(text, PATTERN, "val_loss", minimize=True,
                                        keep_steps=(3, 9))
    assert report.metrics["val_loss"] == values[-1] and report.step == len(values)
    points = [(i + 1, v) for i, v in enumerate(values)]
    assert list(curve) == protocol.thin_curve(points, minimize=True, keep_steps=(3, 9))
    assert len(curve) <= protocol.MAX_CURVE_POINTS and all(math.isfinite(v) for _, v in curve)
