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
    # At least the 0.3 s block is seen; how much more depends on the machine's load.
    assert lag.max >= 0.25
    looplag.reset()
    assert looplag.lag() == looplag.Lag()
