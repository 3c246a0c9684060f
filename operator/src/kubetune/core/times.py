"""RFC 3339 timestamps as the Kubernetes API writes and reads them. Pure functions.

The API writes seconds (``2026-01-02T03:04:05Z``) in most places and microseconds in
MicroTime fields (Lease renewTime, Event eventTime); both are parsed back to Unix seconds.
"""

from __future__ import annotations

import datetime

__all__ = ["parse_rfc3339", "rfc3339", "rfc3339_micro"]


def rfc3339(ts: float) -> str:
    """Unix seconds -> ``YYYY-MM-DDTHH:MM:SSZ`` (metav1.Time), truncated to the second."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(ts: float) -> str:
    """Unix seconds -> ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (metav1.MicroTime)."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(value: str | None) -> float | None:
    """An RFC 3339 time (``Z`` or an offset, with or without fractions) -> Unix seconds;
    None or an empty string -> None. A malformed value raises ValueError naming it."""
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"not an RFC 3339 time: {value!r}") from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()
