"""kube.cache: a fresh listing replaces the cache, except what was written after it was taken."""

from __future__ import annotations

from kubetune.kube import conventions as names
from kubetune.kube.cache import TrialCache

UID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def job(n: int, rv: int) -> dict:
    return {"metadata": {"name": f"s-0a1b2-{n}", "namespace": "ml", "uid": f"job-{n}",
                         "resourceVersion": str(rv),
                         "labels": {names.STUDY_UID_LABEL: UID, names.TRIAL_LABEL: str(n)}}}


def test_a_listing_keeps_objects_written_after_it_and_drops_the_rest() -> None:
    told: list[str] = []
    cache = TrialCache(client=None, namespaces=["ml"], on_change=told.append)  # type: ignore[arg-type]
    cache.upsert("jobs", job(0, 10))
    cache.upsert("jobs", job(1, 20))  # deleted while the watch was down
    cache.upsert("jobs", job(2, 40))  # created by the operator after the list was taken
    cache._replace("jobs", "ml", [job(0, 10)], listed_at=30)
    assert sorted(j["metadata"]["name"] for j in cache.jobs_of(UID)) == ["s-0a1b2-0", "s-0a1b2-2"]
    assert told == [UID]
