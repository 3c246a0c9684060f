"""The operator's parts wired together (kube.controller) on the fake API: a study event leads,
through the watch cache and the work queue, to its trials; a finished trial is recorded and
replaced; a deleted study's trials are left to the garbage collector."""

from __future__ import annotations

import asyncio
import contextlib

from fakeapi import FakeApi
from kubetune.kube import conventions as names
from kubetune.kube import signing
from kubetune.kube.controller import Operator
from studycluster import NS, UID, add_study, finish, jobs


async def until(check, what: str) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def test_a_study_event_becomes_trials_and_a_finished_trial_is_recorded_and_replaced() -> None:
    fake = FakeApi()
    study = add_study(fake)

    async def main() -> None:
        operator = Operator(fake, [NS], key_namespace="kubetune")
        task = asyncio.create_task(operator.run())
        try:
            operator.study_event("ADDED", study)
            await until(lambda: sorted(jobs(fake)) == [0, 1], "trials 0 and 1")
            assert f"/api/v1/namespaces/kubetune/secrets/{signing.KEY_SECRET}" in fake.objects
            finish(fake, 0, loss=0.3, now=1_800_000_000.0)  # the watch brings it
            await until(lambda: sorted(jobs(fake)) == [0, 1, 2], "trial 2")
            annotations = jobs(fake)[0]["metadata"]["annotations"]
            assert names.RESULT_ANNOTATION in annotations
            assert operator.metrics.trials_created._value.get() == 3
            operator.study_event("DELETED", study)
            await until(operator.queue.idle, "the queue to settle")
            assert UID not in operator.studies
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())
