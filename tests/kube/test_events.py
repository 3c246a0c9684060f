"""kube.events: an event that cannot be posted costs the study only the event, and says so
once."""

from __future__ import annotations

import asyncio
import logging

from fakeapi import FakeApi, error_like
from kubetune.kube import api as paths
from kubetune.kube.events import EventPoster
from studycluster import NS, add_study


def test_a_refused_event_is_logged_once_and_the_reconcile_goes_on(caplog) -> None:
    fake = FakeApi()
    study = add_study(fake)
    poster = EventPoster(fake)
    path = paths.events_path(NS)
    for _ in range(3):
        fake.fail("POST", path, error_like("create job in a terminating namespace", path, "e",
                                           "POST"))

    async def main() -> None:
        for _ in range(3):
            await poster.post(study, "TrialCreated", "trial 0")
        await poster.post(study, "TrialCreated", "trial 1")

    with caplog.at_level(logging.INFO, logger="kubetune.events"):
        asyncio.run(main())
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "`kubectl describe` misses them" in warned[0].getMessage()
    assert [e["message"] for e in fake.under(path)] == ["trial 1"]
    assert any("works again" in r.getMessage() for r in caplog.records)
