"""How late the operator's event loop runs: a task that sleeps ``INTERVAL`` seconds and records
how much later than asked it wakes. A loop that something blocks (a sampler run on the loop, a
huge JSON parse) wakes late, and every watch and reconcile waits with it.

``lag()`` gives the latest and the largest lag seen; a lag over ``WARN_SECONDS`` is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

__all__ = ["INTERVAL", "WARN_SECONDS", "Lag", "lag", "monitor", "reset"]

log = logging.getLogger("kubetune.looplag")

INTERVAL = 0.1
WARN_SECONDS = 1.0


@dataclass(frozen=True)
class Lag:
    """Seconds the loop woke late: the latest sample, the largest, how many samples, and how
    many of them were over ``WARN_SECONDS``."""

    latest: float = 0.0
    max: float = 0.0
    samples: int = 0
    slow: int = 0


_lag = Lag()


def lag() -> Lag:
    """The lag measured so far in this process."""
    return _lag


def reset() -> None:
    """Forget what was measured (for a benchmark that wants the lag of one phase)."""
    global _lag
    _lag = Lag()


def _record(late: float) -> None:
    global _lag
    _lag = Lag(latest=late, max=max(_lag.max, late), samples=_lag.samples + 1,
               slow=_lag.slow + (late > WARN_SECONDS))


async def monitor(interval: float = INTERVAL) -> None:
    """Measure the loop's lag until cancelled."""
    while True:
        start = time.monotonic()
        await asyncio.sleep(interval)
        late = max(0.0, time.monotonic() - start - interval)
        _record(late)
        if late > WARN_SECONDS:
            log.warning("event loop lag %.2f s: something blocked the operator's loop", late)
