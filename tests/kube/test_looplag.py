"""kube.looplag: a loop blocked for 0.3 s is measured as waking about 0.3 s late."""

from __future__ import annotations

import asyncio
import time

from kubetune.kube import looplag


def test_a_blocked_loop_is_measured_late() -> None:
    async def scenario() -> None:
        task = asyncio.create_task(looplag.monitor(interval=0.02))
        await asyncio.sleep(0.1)
        time.sleep(0.3)  # blocks the loop, as a sampler run on it would
        await asyncio.sleep(0.1)
        task.cancel()

    looplag.reset()
    asyncio.run(scenario())
    lag = looplag.lag()
    assert lag.samples >= 5
    assert 0.2 < lag.max < 1.0
    assert lag.slow == 0 and lag.latest < 0.2
    looplag.reset()
    assert looplag.lag() == looplag.Lag()
