"""kube.cache: resourceVersions compared for equality only; the operator's own writes stand
until the watch brings them; a re-list replaces the rest."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from kubetune.kube import conventions as names
from kubetune.kube.cache import TrialCache, slim

UID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def job(n: int, rv: str, note: str = "") -> dict:
    return {"metadata": {"name": f"s-0a1b2-{n}", "namespace": "ml", "uid": f"job-{n}",
                         "resourceVersion": rv, "annotations": {"note": note},
                         "labels": {names.STUDY_UID_LABEL: UID, names.TRIAL_LABEL: str(n)}}}


def new_cache(told: list[str] | None = None) -> TrialCache:
    return TrialCache(api=None, namespaces=["ml"],  # type: ignore[arg-type]
                      on_change=(told if told is not None else []).append)


def notes(cache: TrialCache) -> dict[str, str]:
    return {j["metadata"]["name"]: j["metadata"]["annotations"]["note"]
            for j in cache.jobs_of(UID)}


def test_a_write_stands_until_the_watch_brings_it_and_older_events_are_passed_over() -> None:
    cache = new_cache()
    cache.apply_event("jobs", "ADDED", job(0, "b7"))
    cache.wrote("jobs", job(0, "a1", "result"))  # versions are opaque: "a1" is not "less"
    assert cache.apply_event("jobs", "MODIFIED", job(0, "c3", "older")) is None
    assert notes(cache) == {"s-0a1b2-0": "result"}
    assert cache.apply_event("jobs", "MODIFIED", job(0, "a1", "result")) is None  # our own
    assert cache.apply_event("jobs", "MODIFIED", job(0, "zz", "newer")) == UID
    assert notes(cache) == {"s-0a1b2-0": "newer"}


def test_a_write_overtaken_by_the_watch_changes_nothing() -> None:
    cache = new_cache()
    cache.apply_event("jobs", "ADDED", job(0, "5", "ours"))
    cache.apply_event("jobs", "MODIFIED", job(0, "9", "after ours"))
    cache.wrote("jobs", job(0, "5", "ours"))  # the answer came back after both events
    assert notes(cache) == {"s-0a1b2-0": "after ours"}
    cache.apply_event("jobs", "DELETED", job(1, "7"))
    cache.wrote("jobs", job(1, "6", "deleted meanwhile"))
    assert "s-0a1b2-1" not in notes(cache)


def test_a_listing_replaces_the_cache_but_keeps_writes_made_while_it_was_on_its_way() -> None:
    told: list[str] = []
    cache = new_cache(told)
    cache.apply_event("jobs", "ADDED", job(0, "10"))
    cache.apply_event("jobs", "ADDED", job(1, "20"))  # deleted while the watch was down
    cache.wrote("jobs", job(3, "15", "written before the list"))
    before = {"ml/s-0a1b2-3"}
    cache.wrote("jobs", job(2, "40", "created during the list"))
    told.clear()
    cache._replace("jobs", "ml", [job(0, "10"), job(3, "16", "listed")], before)
    assert notes(cache) == {"s-0a1b2-0": "", "s-0a1b2-2": "created during the list",
                            "s-0a1b2-3": "listed"}
    assert told == [UID]
    # Whether the listing was older or newer than the write during it, the next event wins.
    cache.apply_event("jobs", "MODIFIED", job(2, "41", "next"))
    assert notes(cache)["s-0a1b2-2"] == "next"


def test_the_cache_lists_follows_the_watch_and_lists_again_after_410_gone() -> None:
    from fakeapi import FakeApi

    fake = FakeApi()
    path = "/apis/batch/v1/namespaces/ml/jobs"
    fake.put(f"{path}/s-0a1b2-0", job(0, "", "listed"))
    fake.put(f"{path}/unrelated", {"metadata": {"name": "unrelated", "namespace": "ml"}})
    told: list[str] = []

    async def until(check) -> None:
        for _ in range(500):
            if check():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the cache did not catch up")

    async def main() -> None:
        cache = TrialCache(fake, ["ml"], told.append)
        task = asyncio.create_task(cache.run())
        try:
            await asyncio.wait_for(cache.wait_synced(), 5)
            assert notes(cache) == {"s-0a1b2-0": "listed"}
            fake.put(f"{path}/s-0a1b2-1", job(1, "", "watched"))
            await until(lambda: "s-0a1b2-1" in notes(cache))
            lists = fake.calls.count(("GET", path))
            fake.compact()
            fake.delete(f"{path}/s-0a1b2-0")  # its DELETED event is compacted away too
            fake.compact()
            await until(lambda: "s-0a1b2-0" not in notes(cache))
            assert fake.calls.count(("GET", path)) > lists  # listed again
            assert notes(cache) == {"s-0a1b2-1": "watched"}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert UID in told


# ---- what the cache keeps of a trial's objects -----------------------------------------------

RECORDED = Path(__file__).parent / "recorded"


def _recorded_trial() -> tuple[dict, dict]:
    """A finished trial's Job (its result signed again with the tests' key) and pod, as the
    apiserver answered them (benchmarks/bench_scale.py's trials on devcluster)."""
    from kubetune.core import protocol
    from kubetune.kube import jobs as builders
    from studycluster import KEY

    job = json.loads((RECORDED / "trial-job.json").read_text())
    pod = json.loads((RECORDED / "trial-pod.json").read_text())
    result = protocol.parse_result(job["metadata"]["annotations"][names.RESULT_ANNOTATION])
    job["metadata"]["annotations"].update(
        builders.result_patch(result, job, KEY)["metadata"]["annotations"])
    return job, pod


@pytest.mark.parametrize("pod_phase", ["Succeeded", "Running"])
def test_a_slim_trial_reads_as_the_whole_one(pod_phase: str) -> None:
    from kubetune.core import spec as specs
    from kubetune.kube import jobs as builders
    from kubetune.kube import observe as observing
    from studycluster import KEY

    job, pod = _recorded_trial()
    if pod_phase == "Running":  # the trial as it ran: no result yet, its pod reporting
        del job["metadata"]["annotations"][names.RESULT_ANNOTATION]
        job["status"] = {"active": 1, "startTime": job["status"]["startTime"]}
        pod["status"]["phase"] = "Running"
        pod["spec"]["activeDeadlineSeconds"] = 3600
    spec = specs.parse_spec(json.loads((RECORDED / "study-spec.json").read_text()))
    before = json.dumps([job, pod])
    lean_job, lean_pod = slim("jobs", job), slim("pods", pod)
    assert json.dumps([job, pod]) == before  # the objects given are left as they were

    def seen(j: dict, p: dict) -> observing.Observation:
        return observing.observe([j], [p], observing.Reader.of(spec), key=KEY)

    assert seen(lean_job, lean_pod) == seen(job, pod)
    assert seen(job, pod).trials[0].state.value == pod_phase
    assert observing.objective_of(lean_job) == observing.objective_of(job) == ("loss",
                                                                                "minimize")
    now = 2e9
    assert builders.end_pod_patch(lean_pod, now) == builders.end_pod_patch(pod, now)
    for whole, lean in ((job, lean_job), (pod, lean_pod)):
        assert lean["metadata"] == whole["metadata"] and lean["status"] == whole["status"]
        assert len(json.dumps(lean)) < 0.75 * len(json.dumps(whole))


def _pod(n: int, rv: str, phase: str, *, finalizer: bool) -> dict:
    return {"metadata": {"name": f"s-0a1b2-{n}-p", "namespace": "ml", "uid": f"pod-{n}",
                         "resourceVersion": rv, "annotations": {"kubetune.dev/metrics": "{}"},
                         "finalizers": [names.FINALIZER] if finalizer else [],
                         "labels": {names.STUDY_UID_LABEL: UID, names.TRIAL_LABEL: str(n)}},
            "spec": {"nodeName": "n", "containers": [{"name": "trial", "image": "i"}]},
            "status": {"phase": phase}}


def _recorded_job(n: int, rv: str) -> dict:
    j = job(n, rv)
    j["metadata"]["annotations"][names.RESULT_ANNOTATION] = "{}"
    return j


def test_pods_done_with_are_kept_aside_and_given_back_on_request() -> None:
    cache = new_cache()
    cache.apply_event("jobs", "ADDED", job(0, "1"))
    cache.apply_event("pods", "ADDED", _pod(0, "2", "Succeeded", finalizer=True))
    cache.apply_event("pods", "MODIFIED", _pod(0, "3", "Succeeded", finalizer=False))
    assert len(cache.pods_of(UID)) == 1  # its trial has no result yet: still read
    cache.wrote("jobs", _recorded_job(0, "4"))
    cache.apply_event("pods", "MODIFIED", _pod(0, "5", "Running", finalizer=True))
    assert len(cache.pods_of(UID)) == 1  # running: read
    cache.wrote("pods", _pod(0, "6", "Succeeded", finalizer=False))  # released: done with
    assert cache.pods_of(UID) == []
    (aside,) = cache.pods_of(UID, settled=True)
    assert aside == slim("pods", _pod(0, "6", "Succeeded", finalizer=False))
    # A listing brings it again, aside still, once.
    cache._replace("pods", "ml", [_pod(0, "6", "Succeeded", finalizer=False)], set())
    assert (cache.pods_of(UID), len(cache.pods_of(UID, settled=True))) == ([], 1)
    # Deleted with a finalizer back (a new event): read again; then gone.
    deleting = _pod(0, "7", "Succeeded", finalizer=False)
    deleting["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    cache.apply_event("pods", "MODIFIED", deleting)
    assert len(cache.pods_of(UID)) == 1 and len(cache.pods_of(UID, settled=True)) == 1
    cache.apply_event("pods", "DELETED", deleting)
    assert cache.pods_of(UID, settled=True) == []


def test_a_pod_is_never_kept_aside_while_its_trial_is_unrecorded() -> None:
    cache = new_cache()
    cache.apply_event("jobs", "ADDED", _recorded_job(0, "1"))
    cache.apply_event("jobs", "MODIFIED", job(0, "2"))  # its result was removed
    cache.apply_event("pods", "ADDED", _pod(0, "3", "Failed", finalizer=False))
    assert len(cache.pods_of(UID)) == 1
    cache.apply_event("jobs", "DELETED", job(0, "2"))
    cache.apply_event("pods", "MODIFIED", _pod(0, "4", "Failed", finalizer=False))
    assert len(cache.pods_of(UID)) == 1


def _ended(n: int, rv: str, condition: str = "Complete") -> dict:
    obj = job(n, rv)
    obj["status"] = {"conditions": [{"type": condition, "status": "True"}]}
    return obj


def test_trial_ends_the_watch_brings_are_counted_once_until_a_trial_follows(monkeypatch
                                                                             ) -> None:
    now = [100.0]
    monkeypatch.setattr("kubetune.kube.cache.time.monotonic", lambda: now[0])
    cache = new_cache()
    cache._replace("jobs", "ml", [_ended(0, "1")], set())  # listed ended: not a new end
    cache.apply_event("jobs", "ADDED", job(1, "2"))
    cache.apply_event("jobs", "ADDED", job(2, "3"))
    assert cache.ended_seen(UID) is None
    now[0] = 101.0
    cache.apply_event("jobs", "MODIFIED", _ended(1, "4"))
    now[0] = 102.5
    cache.apply_event("jobs", "MODIFIED", _ended(2, "5", "Failed"))
    now[0] = 103.0
    cache.apply_event("jobs", "MODIFIED", _ended(1, "6"))  # a later version of an end
    cache.wrote("jobs", _ended(1, "7"))  # the operator's result on it
    assert [cache.ended_seen(UID), cache.ended_seen(UID), cache.ended_seen(UID)] == [
        101.0, 102.5, None]
    # A study whose Jobs are all gone keeps nothing.
    cache.apply_event("jobs", "MODIFIED", _ended(3, "8"))
    for n in range(4):
        cache.apply_event("jobs", "DELETED", job(n, "9"))
    assert cache.ended_seen(UID) is None


def test_jobs_of_a_study_share_one_spec_and_keep_their_own_metadata() -> None:
    recorded = json.loads((RECORDED / "trial-job.json").read_text())
    cache = new_cache()
    for n in range(3):
        one = json.loads(json.dumps(recorded))
        one["metadata"]["name"], one["metadata"]["uid"] = f"s-0a1b2-{n}", f"job-{n}"
        one["metadata"]["labels"][names.STUDY_UID_LABEL] = UID
        one["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] = f"job-{n}"
        cache.apply_event("jobs", "ADDED", one)
    jobs = cache.jobs_of(UID)
    assert len(jobs) == 3 and len({id(j["spec"]) for j in jobs}) == 1
    assert sorted(j["metadata"]["uid"] for j in jobs) == ["job-0", "job-1", "job-2"]
    assert "selector" not in jobs[0]["spec"]  # it names the Job's own UID; nothing reads it
    from kubetune.kube import observe as observing

    assert observing.objective_of(jobs[0]) == ("loss", "minimize")
