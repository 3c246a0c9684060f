"""Trials of several workers (spec.trial.workers): the Indexed Job and its env, the headless
Service, reading worker 0's metrics, naming the worker whose failure failed the trial, and the
re-run count when a failure ends every worker."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubetune import sdk
from kubetune.core.spec import MAX_WORKERS, SpecError, parse_spec
from kubetune.core.trials import TrialState
from kubetune.kube import conventions as names
from kubetune.kube import jobs, observe
from test_observe import UID, job, look, only, pod

STUDY = {"metadata": {"name": "ddp.mnist", "namespace": "ml", "uid": UID}}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def spec_of(workers: int = 2, port: int | None = None, **pod_spec: Any) -> Any:
    trial: dict[str, Any] = {"workers": workers}
    if port is not None:
        trial["port"] = port
    return parse_spec({
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "searchSpace": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
        "trial": trial,
        "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "trainer", "image": "kubetune/trainer:0.1.0"}],
            **pod_spec}}}},
    })


def env_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def test_a_trial_of_two_workers_is_one_indexed_job_of_two_pods() -> None:
    manifest = jobs.build_trial_job(STUDY, spec_of(2), 7, {"lr": 0.01})
    spec = manifest["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    service = names.workers_service_name("ddp.mnist", UID)
    assert spec["template"]["spec"]["subdomain"] == service
    env = env_of(manifest)
    name = manifest["metadata"]["name"]
    assert env["MASTER_ADDR"]["value"] == f"{name}-0.{service}"
    assert env["MASTER_PORT"]["value"] == "29500"
    assert env["WORLD_SIZE"]["value"] == "2"
    assert env["RANK"]["valueFrom"] == {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    assert env["LOCAL_RANK"]["value"] == "0"
    # Every worker is told the trial's params and identity, as a one-pod trial is.
    assert env["KUBETUNE_TRIAL"]["value"] == "7"
    assert "KUBETUNE_PARAM_LR" in env


def test_a_one_worker_trial_is_the_job_it_always_was() -> None:
    one = jobs.build_trial_job(STUDY, spec_of(1), 7, {"lr": 0.01})
    assert "completionMode" not in one["spec"]
    assert "subdomain" not in one["spec"]["template"]["spec"]
    assert not {"MASTER_ADDR", "WORLD_SIZE", "RANK"} & set(env_of(one))
    assert one["metadata"]["name"] == names.trial_job_name("ddp.mnist", UID, 7)


def test_the_port_is_the_one_given() -> None:
    manifest = jobs.build_trial_job(STUDY, spec_of(3, port=23456), 0, {"lr": 0.01})
    assert env_of(manifest)["MASTER_PORT"]["value"] == "23456"
    service = jobs.workers_service(STUDY, spec_of(3, port=23456))
    assert service["spec"]["ports"][0]["port"] == 23456


def test_the_service_is_headless_selects_the_studys_pods_and_goes_with_the_study() -> None:
    service = jobs.workers_service(STUDY, spec_of(2))
    assert service["metadata"]["name"] == names.workers_service_name("ddp.mnist", UID)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {names.STUDY_UID_LABEL: UID}
    owner = service["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (names.KIND, UID, True)
    # The pods it selects carry that label.
    manifest = jobs.build_trial_job(STUDY, spec_of(2), 0, {"lr": 0.01})
    assert manifest["spec"]["template"]["metadata"]["labels"][names.STUDY_UID_LABEL] == UID


study_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,60}[a-z0-9])?(\.[a-z0-9]{1,40}){0,3}",
                            fullmatch=True)


@given(study=study_names, number=st.integers(0, 10**8), workers=st.integers(2, MAX_WORKERS))
def test_worker_hostnames_and_the_service_are_dns_labels(study: str, number: int,
                                                         workers: int) -> None:
    job_name = names.trial_job_name(study, UID, number, workers)
    for index in (0, workers - 1):
        host = f"{job_name}-{index}"  # what the Job controller names worker `index`
        assert len(host) <= 63 and DNS_LABEL.match(host), host
    service = names.workers_service_name(study, UID)
    assert len(service) <= 63 and DNS_LABEL.match(service) and service[0].isalpha(), service


@pytest.mark.parametrize(("field", "where"), [
    ({"completions": 4}, "jobTemplate.spec.completions"),
    ({"parallelism": 2}, "jobTemplate.spec.parallelism"),
    ({"completionMode": "Indexed"}, "jobTemplate.spec.completionMode"),
])
def test_a_template_that_sets_what_workers_decides_is_refused(field: dict, where: str) -> None:
    spec = spec_of(2).model_dump(by_alias=True, exclude_none=True)
    spec["jobTemplate"]["spec"].update(field)
    with pytest.raises(SpecError) as e:
        parse_spec(spec)
    assert where in str(e.value) and "trial.workers" in str(e.value)


@pytest.mark.parametrize(("pod_spec", "where"), [
    ({"subdomain": "mine"}, "template.spec.subdomain"),
    ({"hostname": "mine"}, "template.spec.hostname"),
    ({"restartPolicy": "OnFailure"}, "template.spec.restartPolicy"),
])
def test_pod_fields_the_workers_need_are_refused(pod_spec: dict, where: str) -> None:
    with pytest.raises(SpecError) as e:
        spec_of(2, **pod_spec)
    assert where in str(e.value) and "remove it" in str(e.value)
    spec_of(1, **pod_spec)  # a one-worker trial may set them


@pytest.mark.parametrize("workers", [0, MAX_WORKERS + 1])
def test_workers_out_of_range_are_refused(workers: int) -> None:
    with pytest.raises(SpecError) as e:
        spec_of(workers)
    assert "trial.workers" in str(e.value)


# ---- observing a trial of several workers ---------------------------------------------------


def worker_job(n: int, workers: int = 2, **kw: Any) -> dict[str, Any]:
    j = job(n, **kw)
    j["spec"].update(completionMode="Indexed", completions=workers, parallelism=workers)
    return j


def worker_pod(n: int, index: int, **kw: Any) -> dict[str, Any]:
    p = pod(n, name=f"{names.trial_job_name('study', UID, n, 2)}-{index}-abcde",
            created=1.0 + index, **kw)
    p["metadata"]["labels"][names.COMPLETION_INDEX] = str(index)
    p["metadata"]["annotations"][names.COMPLETION_INDEX] = str(index)
    return p


def test_the_metrics_of_a_trial_are_worker_0s() -> None:
    # Worker 1 is newer and reports another value: only worker 0's counts.
    seen = look([worker_job(0, complete=True)], [
        worker_pod(0, 0, phase="Succeeded", metrics={"step": 3, "metrics": {"val_loss": 0.25},
                                                     "final": True}),
        worker_pod(0, 1, phase="Succeeded", metrics={"step": 3, "metrics": {"val_loss": 9.0},
                                                     "final": True}),
    ])
    t = only(seen)
    assert (t.state, t.value) == (TrialState.SUCCEEDED, 0.25)


def test_a_running_trial_shows_worker_0s_curve() -> None:
    seen = look([worker_job(0)], [
        worker_pod(0, 0, metrics={"step": 2, "metrics": {"val_loss": 0.5}}),
        worker_pod(0, 1, metrics={"step": 4, "metrics": {"val_loss": 7.0}}),
    ])
    t = only(seen)
    assert (t.state, t.value) == (TrialState.RUNNING, 0.5)


def test_the_worker_whose_failure_failed_the_trial_is_named() -> None:
    j = worker_job(0, failed="PodFailurePolicy")
    bad = worker_pod(0, 1, phase="Failed", exit_code=3)
    j["status"]["conditions"][0]["message"] = (
        f"Container trainer for pod ml/{bad['metadata']['name']} failed with exit code 3 "
        "matching FailJob rule at index 1")
    ended = worker_pod(0, 0, phase="Failed", exit_code=143,
                       metrics={"step": 1, "metrics": {"val_loss": 0.7}})
    j["status"]["failed"] = 2
    t = only(look([j], [ended, bad]))
    assert (t.state, t.reason) == (TrialState.FAILED, "ExitCode")
    assert t.message.startswith(f"worker 1 of 2 (pod {bad['metadata']['name']}): "
                                "container trainer exited with code 3"), t.message
    assert t.value == 0.7  # the partial value is still worker 0's
    assert t.retries == 0  # the failure ended worker 0 too: nothing was re-run


def test_a_worker_lost_and_re_run_counts_once() -> None:
    j = worker_job(0, complete=True)
    j["status"].update(failed=1, succeeded=2)
    t = only(look([j], [
        worker_pod(0, 0, phase="Succeeded", metrics={"step": 1, "metrics": {"val_loss": 0.3},
                                                     "final": True}),
        worker_pod(0, 1, phase="Succeeded")]))
    assert (t.state, t.retries) == (TrialState.SUCCEEDED, 1)


def test_retries_of_a_failed_trial_of_four_workers_leave_out_the_ended_ones() -> None:
    j = worker_job(0, workers=4, failed="PodFailurePolicy")
    j["status"].update(failed=4 + 2, succeeded=0)  # two lost earlier, then all four ended
    assert observe.retries(j) == 2


# ---- the SDK on a worker other than 0 -------------------------------------------------------


def test_only_worker_0_patches_its_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"KUBETUNE_TRIAL": "3", "POD_NAME": "p", "POD_NAMESPACE": "ml", "WORLD_SIZE": "2",
            "KUBECONFIG": "/nonexistent"}
    made: list[dict] = []
    monkeypatch.setattr(sdk, "transport_from_env", lambda env: made.append(env) or object())
    assert sdk.Reporter.from_env({**base, "RANK": "1"}).transport is None
    assert made == []
    assert sdk.Reporter.from_env({**base, "RANK": "0"}).transport is not None
    one = {k: v for k, v in base.items() if k != "WORLD_SIZE"}
    assert sdk.Reporter.from_env({**one, "RANK": "5"}).transport is not None
