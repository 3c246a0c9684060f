"""core.times: RFC 3339 as the API writes it, and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubetune.core import times


def test_seconds_and_micro_formats():
    assert times.rfc3339(0) == "1970-01-01T00:00:00Z"
    assert times.rfc3339(1.9) == "1970-01-01T00:00:01Z"
    assert times.rfc3339_micro(1.25) == "1970-01-01T00:00:01.250000Z"


@given(st.integers(min_value=0, max_value=4_000_000_000))
def test_round_trip_whole_seconds(ts):
    assert times.parse_rfc3339(times.rfc3339(ts)) == ts


def test_parse_accepts_offsets_fractions_and_empty():
    assert times.parse_rfc3339("1970-01-01T01:00:00+01:00") == 0
    assert times.parse_rfc3339("1970-01-01T00:00:01.500000Z") == 1.5
    assert times.parse_rfc3339("1970-01-01T00:00:02") == 2
    assert times.parse_rfc3339(None) is None
    assert times.parse_rfc3339("") is None


def test_a_malformed_time_names_the_value():
    with pytest.raises(ValueError, match="not an RFC 3339 time: 'yesterday'"):
        times.parse_rfc3339("yesterday")
