"""The store the watches feed and the server's fan-out: one change reaches every viewer's
event stream, coalesced; pages and JSON come from the store alone."""

from __future__ import annotations

import asyncio
import copy
import json

from aiohttp.test_utils import TestClient, TestServer
from kubetune._dashboard import server, watches
from kubetune._dashboard.incremental import StudyReader
from kubetune._dashboard.store import MAX_EVENTS, Store
from kubetune.core import workloads
from kubetune.kube import conventions as names
from synthetic import study_object, trial_jobs


def event(i: int, uid: str = "u-1") -> dict:
    return {"metadata": {"uid": f"e-{i}", "namespace": "team-a", "resourceVersion": str(i)},
            "involvedObject": {"uid": uid, "kind": "TuningStudy"}, "reason": "TrialCreated",
            "message": f"trial {i}", "type": "Normal"}


def test_store_groups_by_study_and_bounds_events():
    changed: list[set] = []
    store = Store(on_change=changed.append)
    store.replace("studies", None, [study_object()])
    store.replace("jobs", None, trial_jobs(3))
    for i in range(MAX_EVENTS + 20):
        store.apply("events", "ADDED", event(i))
    snap = store.snapshot(("team-a", "big"))
    assert len(snap.jobs) == 3 and len(snap.events) == MAX_EVENTS
    assert min(int(e["metadata"]["resourceVersion"]) for e in snap.events) == 20
    assert changed[-1] == {("team-a", "big")}
    # A relist without a Job drops it; deleting the study drops everything of it.
    store.replace("jobs", "team-a", trial_jobs(2))
    assert len(store.snapshot(("team-a", "big")).jobs) == 2
    store.apply("studies", "DELETED", study_object())
    assert store.snapshot(("team-a", "big")) is None and store.studies() == []


def test_objects_of_other_studies_do_not_mix():
    store = Store()
    store.replace("studies", None, [study_object(), study_object("other", uid="u-2")])
    store.replace("jobs", None, trial_jobs(2) + trial_jobs(5, study_uid="u-2"))
    assert len(store.snapshot(("team-a", "big")).jobs) == 2
    assert len(store.snapshot(("team-a", "other")).jobs) == 5


async def _fan_out() -> None:
    store = Store()
    dash = server.Dashboard(store, lambda ns, pod: f"log of {pod}\n")
    store.on_change = dash.changed
    store.replace("studies", None, [study_object()])
    store.replace("jobs", None, trial_jobs(4))
    async with TestClient(TestServer(dash.app())) as client:
        listed = await (await client.get("/api/studies")).json()
        assert [s["name"] for s in listed["studies"]] == ["big"]
        page = await (await client.get("/api/studies/team-a/big")).json()
        assert page["trials"] == 4 and page["figures"]["history"] is not None
        viewers = [await client.get("/api/stream") for _ in range(2)]
        for v in viewers:
            assert (await v.content.readline()).startswith(b"retry:")
            await v.content.readline()
        # Changes from a watch thread, in a burst: each viewer gets one message naming the study.
        jobs = trial_jobs(6)

        def burst() -> None:
            for job in jobs[4:]:
                store.apply("jobs", "ADDED", copy.deepcopy(job))

        await asyncio.get_running_loop().run_in_executor(None, burst)
        for v in viewers:
            assert await v.content.readline() == b"event: change\n"
            data = json.loads((await v.content.readline()).decode().removeprefix("data: "))
            assert data["studies"] == ["team-a/big"]
            v.close()
        page = await (await client.get("/api/studies/team-a/big")).json()
        assert page["trials"] == 6
        rows = await (await client.get("/api/studies/team-a/big/trials?sort=value&desc=1")
                      ).json()
        values = [r["value"] for r in rows["rows"]]
        assert values == sorted(values, reverse=True)
        log = await client.get("/logs/team-a/big-abcde-1-xyz")
        assert await log.text() == "log of big-abcde-1-xyz\n"
        missing = await client.get("/api/studies/team-a/nope")
        assert missing.status == 404 and "no TuningStudy 'nope'" in await missing.text()
        js = await client.get("/static/plotly.min.js")
        assert js.status == 200 and js.headers["Content-Encoding"] == "gzip"
        assert (await client.get("/static/../../etc/passwd")).status == 404
        html = await (await client.get("/studies/team-a/big")).text()
        assert 'src="../../static/plotly.min.js"' in html


def test_one_change_reaches_every_viewer_once():
    asyncio.run(_fan_out())


def test_dashboard_port_out_of_range_is_a_usage_error(capsys):
    from kubetune import cli

    assert cli.main(["dashboard", "--port", "70000", "--no-browser"]) == 2
    assert "--port 70000: give a port from 1 to 65535" in capsys.readouterr().err


def jobset_trials(n: int) -> list[dict]:
    """``n`` finished trials as JobSets: the Jobs' metadata on a JobSet that says its kind."""
    kind = workloads.kind_of({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
                              "spec": {"replicatedJobs": [{"name": "leader"}]}})
    assert kind is not None
    out = []
    for job in trial_jobs(n):
        meta = copy.deepcopy(job["metadata"])
        meta["name"] = meta["name"].replace("big", "js")
        meta["uid"] = "js-" + meta["uid"]
        meta["annotations"][names.TRIAL_KIND_ANNOTATION] = kind.encode()
        done = job["status"]["conditions"][0]["type"] == "Complete"
        out.append({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
                    "metadata": meta, "spec": {"replicatedJobs": []},
                    "status": {"conditions": [{"type": "Completed" if done else "Failed",
                                               "status": "True"}]}})
    return out


def test_trials_of_a_trial_template_kind_are_kept_beside_jobs():
    store = Store()
    jobset_study = study_object()
    jobset_study["spec"].pop("jobTemplate")
    jobset_study["spec"]["trialTemplate"] = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
        "spec": {"replicatedJobs": [{"name": "leader", "replicas": 1, "template": {
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "t", "image": "kubetune/trainer:0.1.0"}]}}}}}]}}
    resource = watches.trial_kind(jobset_study)
    assert resource is not None and resource.name == "jobsets.jobset.x-k8s.io/v1alpha2"
    assert watches.trial_kind(study_object()) is None
    store.replace("studies", None, [jobset_study])
    store.replace(resource.name, None, jobset_trials(4))
    store.replace("jobs", None, [])  # a relist of Jobs leaves the JobSets alone
    snap = store.snapshot(("team-a", "big"))
    assert sorted(j["metadata"]["name"] for j in snap.jobs) == [f"js-abcde-{i}" for i in range(4)]
    trials = StudyReader().view(snap.study, snap.jobs, snap.pods, snap.events).trials
    assert [t.state.value for t in trials] == ["Pruned", "Succeeded", "Succeeded", "Succeeded"]
    store.replace(resource.name, "team-a", jobset_trials(2))
    assert len(store.snapshot(("team-a", "big")).jobs) == 2
