"""kube.workqueue: one reconcile at a time per study, triggers folded, requeues scheduled,
failures retried with a capped backoff and logged once per streak."""

from __future__ import annotations

import asyncio
import itertools
import logging

from kubetune.kube import errors
from kubetune.kube.failures import Backoff
from kubetune.kube.workqueue import StudyQueue


def test_triggers_during_a_reconcile_fold_into_one_more_and_studies_never_overlap() -> None:
    running: set[str] = set()
    overlaps: list[str] = []
    runs: list[str] = []
    gate = asyncio.Event()

    async def work(uid: str) -> None:
        if uid in running:
            overlaps.append(uid)
        running.add(uid)
        runs.append(uid)
        await gate.wait()
        running.discard(uid)

    async def main() -> None:
        queue = StudyQueue(work)
        queue.trigger("a")
        queue.trigger("b")
        await asyncio.sleep(0)
        for _ in range(5):
            queue.trigger("a")
        gate.set()
        while not queue.idle():
            await asyncio.sleep(0)

    asyncio.run(main())
    assert overlaps == []
    assert sorted(runs) == ["a", "a", "b"]


def test_a_reconcile_that_asks_to_look_again_is_run_again_after_that_time() -> None:
    times: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def work(uid: str) -> float | None:
            times.append(loop.time())
            return 0.05 if len(times) < 2 else None

        queue = StudyQueue(work)
        queue.trigger("a")
        while len(times) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert len(times) == 2
    assert times[1] - times[0] >= 0.05


def test_failures_are_retried_with_backoff_and_logged_once(caplog) -> None:
    attempts: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def work(uid: str) -> None:
            attempts.append(loop.time())
            if len(attempts) <= 3:
                raise errors.Forbidden(403, 'jobs.batch is forbidden: User "op" cannot create')

        queue = StudyQueue(work, name=lambda uid: f"ml/{uid}", retry_cap=0.08)
        queue._backoff["s"] = Backoff(first=0.02, cap=0.08)
        queue.trigger("s")
        while len(attempts) < 4 or not queue.idle():
            await asyncio.sleep(0.005)
            if len(attempts) == 2:
                queue.trigger("s")  # an event during the backoff waits for it

    with caplog.at_level(logging.DEBUG, logger="kubetune.reconcile"):
        asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) == 4
    assert gaps[0] >= 0.02 and gaps[1] >= 0.04 and gaps[2] >= 0.08
    errors_logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors_logged) == 1
    assert "reconcile of study ml/s failed" in errors_logged[0].getMessage()
    assert "lacks a permission" in errors_logged[0].getMessage()
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_backoff_doubles_to_its_cap_and_starts_over_after_a_success() -> None:
    b = Backoff(first=1.0, cap=10.0)
    assert [b.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    b.reset()
    assert b.next() == 1.0


def test_a_study_is_resynced_its_interval_after_its_last_reconcile_and_only_while_known(
        ) -> None:
    """The safety net: each study is looked at again ``resync`` seconds after its last
    reconcile; reconciles meanwhile push it back, and a study no longer known is left alone."""
    known = {"a", "b"}
    runs: list[tuple[str, float]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def work(uid: str) -> None:
            runs.append((uid, loop.time() - start))

        queue = StudyQueue(work, resync=0.4, known=known.__contains__)
        queue.trigger("a")
        queue.trigger("b")
        for _ in range(3):  # events keep "a" busy: its resync keeps moving back
            await asyncio.sleep(0.1)
            known.discard("b")  # "b" is gone before its resync comes due
            queue.trigger("a")
        await asyncio.sleep(0.6)

    asyncio.run(main())
    b = [t for uid, t in runs if uid == "b"]
    a = [t for uid, t in runs if uid == "a"]
    assert len(b) == 1
    # Reconciles of "a" on events at 0, 0.1, 0.2 and 0.3 s, then one resync 0.4 s after the
    # last (0.7 s); the next would come at 1.1 s, after the run's end (0.9 s).
    assert len(a) == 5
    assert 0.35 <= a[4] - a[3] <= 0.6


def test_a_forgotten_study_loses_its_resync() -> None:
    runs: list[str] = []

    async def main() -> None:
        async def work(uid: str) -> None:
            runs.append(uid)

        queue = StudyQueue(work, resync=0.05)
        queue.trigger("a")
        await asyncio.sleep(0.01)
        queue.forget("a")
        await asyncio.sleep(0.15)

    asyncio.run(main())
    assert runs == ["a"]
