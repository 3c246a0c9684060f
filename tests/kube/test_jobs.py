"""kube.jobs: the trial Job is the user's jobTemplate plus exactly what docs/design.md
sections 2-4 add."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubetune.core import protocol
from kubetune.core.spec import SpecError, StudySpec, parse_spec
from kubetune.core.trials import TrialState
from kubetune.kube import conventions as names
from kubetune.kube import jobs

UID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
STUDY = {"metadata": {"name": "digits-mlp", "namespace": "ml", "uid": UID}}
PARAMS = {"lr": 0.001, "batch-size": 64, "optimizer": "adam", "use.bn": True}
DISRUPTION_RULE = {"action": "Count", "onPodConditions": [{"type": "DisruptionTarget"}]}
EXIT_CODE_RULE = {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [0]}}


def template(**job_spec: Any) -> dict[str, Any]:
    """The jobTemplate of docs/design.md section 2, its Job spec fields replaced by ``job_spec``."""
    return {
        "metadata": {
            "labels": {"kueue.x-k8s.io/queue-name": "gpu-queue", "team": "vision"},
            "annotations": {"owner": "ana"},
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "trainer"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "kubetune/trainer:0.1.0",
                            "args": [
                                "--lr=$(KUBETUNE_PARAM_LR)",
                                "--bs=$(KUBETUNE_PARAM_BATCH_SIZE)",
                            ],
                            "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "8Gi"}},
                            "env": [
                                {"name": "DATA_DIR", "value": "/data"},
                                {"name": "KUBETUNE_TRIAL", "value": "user-set"},
                                {"name": "KUBETUNE_PARAM_LR", "value": "0.5"},
                                {"name": "KUBETUNE_EXTRA", "value": "kept"},
                            ],
                        }
                    ],
                },
            },
            **job_spec,
        },
    }


def study_spec(
    job_template: dict[str, Any] | None = None,
    timeout: int | None = 3600,
) -> StudySpec:
    budget: dict[str, Any] = {"maxTrials": 40, "parallelism": 4}
    if timeout is not None:
        budget["trialTimeoutSeconds"] = timeout
    return parse_spec(
        {
            "objective": {"metric": "val_loss", "direction": "minimize"},
            "searchSpace": {
                "lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
                "batch-size": {"type": "int", "low": 16, "high": 256, "log": True},
                "optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
                "use.bn": {"type": "categorical", "values": [True, False]},
            },
            "budget": budget,
            "jobTemplate": template() if job_template is None else job_template,
        }
    )


def build(
    spec: StudySpec | None = None, number: int = 3, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    return jobs.build_trial_job(
        STUDY, spec or study_spec(), number, PARAMS if params is None else params
    )


def pod_spec_of(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names_ = [e["name"] for e in container["env"]]
    assert len(names_) == len(set(names_)), f"duplicate env names {names_}"
    return {e["name"]: e for e in container["env"]}


# ---- identity, labels, owner ----------------------------------------------------------------


def test_job_identity_and_owner() -> None:
    job = build()
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    meta = job["metadata"]
    assert meta["name"] == names.trial_job_name("digits-mlp", UID, 3) == "digits-mlp-0a1b2-3"
    assert meta["namespace"] == "ml"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "kubetune.dev/v1alpha1",
            "kind": "TuningStudy",
            "name": "digits-mlp",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_labels_on_job_and_pod_template_with_the_users_kept() -> None:
    job = build()
    ours = {
        "kubetune.dev/study-uid": UID,
        "kubetune.dev/study": "digits-mlp",
        "kubetune.dev/trial": "3",
    }
    assert job["metadata"]["labels"] == {
        "kueue.x-k8s.io/queue-name": "gpu-queue",
        "team": "vision",
        **ours,
    }
    assert job["spec"]["template"]["metadata"]["labels"] == {"app": "trainer", **ours}
    assert job["metadata"]["annotations"]["owner"] == "ana"


def test_our_labels_win_over_the_templates() -> None:
    t = template()
    t["metadata"]["labels"]["kubetune.dev/trial"] = "99"
    t["spec"]["template"]["metadata"]["labels"]["kubetune.dev/study-uid"] = "someone-else"
    job = build(study_spec(t))
    assert job["metadata"]["labels"]["kubetune.dev/trial"] == "3"
    assert job["spec"]["template"]["metadata"]["labels"]["kubetune.dev/study-uid"] == UID


def test_long_study_name_is_shortened_in_name_and_label() -> None:
    study = {"metadata": {"name": "s" * 120, "namespace": "ml", "uid": UID}}
    job = jobs.build_trial_job(study, study_spec(), 12, PARAMS)
    assert len(job["metadata"]["name"]) <= 63
    assert job["metadata"]["labels"]["kubetune.dev/study"] == names.label_value("s" * 120)
    assert len(job["metadata"]["labels"]["kubetune.dev/study"]) <= 63
    assert job["metadata"]["ownerReferences"][0]["name"] == "s" * 120
    env = env_of(pod_spec_of(job)["containers"][0])
    assert env["KUBETUNE_STUDY"]["value"] == "s" * 120


def test_params_annotation_round_trips() -> None:
    job = build()
    text = job["metadata"]["annotations"][names.PARAMS_ANNOTATION]
    assert protocol.parse_params(text) == PARAMS
    assert list(protocol.parse_params(text)) == list(PARAMS)  # the search space's order


# ---- the user's template --------------------------------------------------------------------


def test_users_container_is_kept() -> None:
    (container,) = pod_spec_of(build())["containers"]
    assert container["name"] == "trainer"
    assert container["image"] == "kubetune/trainer:0.1.0"
    assert container["args"] == ["--lr=$(KUBETUNE_PARAM_LR)", "--bs=$(KUBETUNE_PARAM_BATCH_SIZE)"]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": 1, "memory": "8Gi"}}
    env = env_of(container)
    assert env["DATA_DIR"] == {"name": "DATA_DIR", "value": "/data"}
    assert env["KUBETUNE_EXTRA"] == {"name": "KUBETUNE_EXTRA", "value": "kept"}


def test_input_spec_is_not_mutated() -> None:
    spec = study_spec(template(suspend=True, backoffLimit=0))
    before = copy.deepcopy(spec.model_dump(by_alias=True))
    job = build(spec)
    assert spec.model_dump(by_alias=True) == before
    # Nor does the Job share mutable parts with the spec.
    pod_spec_of(job)["containers"][0]["args"].append("--mutated")
    job["metadata"]["labels"]["x"] = "y"
    assert spec.model_dump(by_alias=True) == before
    assert build(spec) == build(spec)


def test_suspend_is_never_touched() -> None:
    assert build(study_spec(template(suspend=True)))["spec"]["suspend"] is True
    assert build(study_spec(template(suspend=False)))["spec"]["suspend"] is False
    assert "suspend" not in build()["spec"]


def test_template_without_metadata() -> None:
    t = {
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "t", "image": "kubetune/trainer:0.1.0"}],
                }
            }
        }
    }
    job = build(study_spec(t))
    assert job["metadata"]["labels"]["kubetune.dev/trial"] == "3"
    assert set(job["metadata"]["annotations"]) == {names.PARAMS_ANNOTATION}
    assert job["spec"]["template"]["metadata"]["finalizers"] == [names.FINALIZER]


# ---- environment ----------------------------------------------------------------------------


def test_trial_env() -> None:
    (container,) = pod_spec_of(build())["containers"]
    env = env_of(container)
    assert json.loads(env["KUBETUNE_PARAMS"]["value"]) == PARAMS
    assert env["KUBETUNE_STUDY"]["value"] == "digits-mlp"
    assert env["KUBETUNE_TRIAL"]["value"] == "3"
    assert env["KUBETUNE_METRIC"]["value"] == "val_loss"
    assert env["POD_NAME"] == {
        "name": "POD_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    assert env["POD_NAMESPACE"] == {
        "name": "POD_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    }
    # Upper-cased, non-alphanumerics as "_"; values as a shell would pass them on.
    assert env["KUBETUNE_PARAM_LR"]["value"] == "0.001"
    assert env["KUBETUNE_PARAM_BATCH_SIZE"]["value"] == "64"
    assert env["KUBETUNE_PARAM_OPTIMIZER"]["value"] == "adam"
    assert env["KUBETUNE_PARAM_USE_BN"]["value"] == "true"


def with_spec(**changes: Any) -> StudySpec:
    return parse_spec({**study_spec().model_dump(by_alias=True, exclude_none=True), **changes})


def test_direction_and_keep_steps_for_the_sdks_thinning() -> None:
    env = env_of(pod_spec_of(build())["containers"][0])
    assert env["KUBETUNE_DIRECTION"]["value"] == "minimize"
    assert env["KUBETUNE_KEEP_STEPS"]["value"] == ""
    asha = with_spec(
        objective={"metric": "acc", "direction": "maximize"},
        earlyStopping={"name": "asha", "minStep": 1, "maxStep": 27, "reductionFactor": 3},
    )
    env = env_of(pod_spec_of(build(asha))["containers"][0])
    assert env["KUBETUNE_DIRECTION"]["value"] == "maximize"
    assert env["KUBETUNE_METRIC"]["value"] == "acc"
    # ASHA's rungs below maxStep: the steps whose running best thinning must keep exactly.
    assert env["KUBETUNE_KEEP_STEPS"]["value"] == "1,3,9"
    median = with_spec(earlyStopping={"name": "median", "minStep": 2})
    assert env_of(pod_spec_of(build(median))["containers"][0])["KUBETUNE_KEEP_STEPS"]["value"] == ""


def test_params_env_is_the_annotations_text() -> None:
    job = build()
    env = env_of(pod_spec_of(job)["containers"][0])
    assert (
        env["KUBETUNE_PARAMS"]["value"] == job["metadata"]["annotations"][names.PARAMS_ANNOTATION]
    )


def test_users_kubetune_env_is_overridden_and_ours_come_first() -> None:
    (container,) = pod_spec_of(build())["containers"]
    env = env_of(container)
    assert env["KUBETUNE_TRIAL"]["value"] == "3"
    assert env["KUBETUNE_PARAM_LR"]["value"] == "0.001"
    order = [e["name"] for e in container["env"]]
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    assert order.index("KUBETUNE_PARAM_LR") < order.index("DATA_DIR")
    assert order.index("POD_NAME") < order.index("KUBETUNE_EXTRA")


def test_every_container_and_init_container_gets_the_env() -> None:
    t = template()
    pod = t["spec"]["template"]["spec"]
    pod["containers"].append({"name": "sidecar", "image": "busybox"})
    pod["initContainers"] = [
        {"name": "fetch", "image": "busybox", "env": [{"name": "KUBETUNE_STUDY", "value": "mine"}]}
    ]
    spec = build(study_spec(t))["spec"]["template"]["spec"]
    for c in [*spec["containers"], *spec["initContainers"]]:
        env = env_of(c)
        assert env["KUBETUNE_STUDY"]["value"] == "digits-mlp", c["name"]
        assert env["KUBETUNE_PARAM_OPTIMIZER"]["value"] == "adam", c["name"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.001, "0.001"),
        (1e-05, "1e-05"),
        (3, "3"),
        (-2, "-2"),
        (True, "true"),
        (False, "false"),
        ("sgd", "sgd"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_param_env_value(value: Any, text: str) -> None:
    assert jobs.param_env_value(value) == text


# ---- pod template: finalizer, service account, deadline --------------------------------------


def test_result_finalizer_on_pod_template_once() -> None:
    t = template()
    t["spec"]["template"]["metadata"]["finalizers"] = ["example.com/keep", names.FINALIZER]
    job = build(study_spec(t))
    assert job["spec"]["template"]["metadata"]["finalizers"] == [
        "example.com/keep",
        "kubetune.dev/result",
    ]
    assert build()["spec"]["template"]["metadata"]["finalizers"] == ["kubetune.dev/result"]
    assert "finalizers" not in build()["metadata"]


def test_service_account_defaulted_unless_set() -> None:
    assert pod_spec_of(build())["serviceAccountName"] == "kubetune-trial"
    t = template()
    t["spec"]["template"]["spec"]["serviceAccountName"] = "my-trainer"
    assert pod_spec_of(build(study_spec(t)))["serviceAccountName"] == "my-trainer"


@pytest.mark.parametrize(
    ("given", "timeout", "expected"),
    [
        (None, 3600, 3600),
        (600, 3600, 600),
        (7200, 3600, 3600),
        (600, None, 600),
        (None, None, None),
    ],
)
def test_active_deadline_is_the_smaller(
    given: int | None, timeout: int | None, expected: int | None
) -> None:
    t = template()
    if given is not None:
        t["spec"]["template"]["spec"]["activeDeadlineSeconds"] = given
    job = build(study_spec(t, timeout=timeout))
    assert pod_spec_of(job).get("activeDeadlineSeconds") == expected
    # A pod-level deadline: time Pending for a node does not count.
    assert "activeDeadlineSeconds" not in job["spec"]


# ---- Job spec: retries and disruptions ------------------------------------------------------


def test_backoff_limit_is_max_retries() -> None:
    assert build()["spec"]["backoffLimit"] == 3  # budget.maxRetries' default
    spec = study_spec(template(backoffLimit=0))
    spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"max_retries": 0})})
    assert build(spec)["spec"]["backoffLimit"] == 0


def test_a_template_backoff_limit_above_zero_is_refused_with_max_retries_named() -> None:
    with pytest.raises(SpecError, match=r"jobTemplate\.spec\.backoffLimit: must be 0 .*"
                                        r"budget\.maxRetries"):
        study_spec(template(backoffLimit=2))


def test_disruptions_count_first_and_the_training_codes_exit_fails_the_job_last() -> None:
    assert build()["spec"]["podFailurePolicy"] == {"rules": [DISRUPTION_RULE, EXIT_CODE_RULE]}
    users = {
        "action": "Ignore",
        "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [42]},
    }
    t = template(podFailurePolicy={"rules": [users, copy.deepcopy(DISRUPTION_RULE)]})
    assert build(study_spec(t))["spec"]["podFailurePolicy"] == {
        "rules": [DISRUPTION_RULE, users, EXIT_CODE_RULE]}


def test_no_pod_failure_policy_for_restart_on_failure() -> None:
    # The API server refuses a podFailurePolicy unless restartPolicy is Never.
    t = template()
    t["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    job = build(study_spec(t))
    assert "podFailurePolicy" not in job["spec"]
    assert job["spec"]["backoffLimit"] == 3


def test_missing_restart_policy_becomes_never() -> None:
    t = template()
    del t["spec"]["template"]["spec"]["restartPolicy"]
    job = build(study_spec(t))
    assert job["spec"]["podFailurePolicy"] == {"rules": [DISRUPTION_RULE, EXIT_CODE_RULE]}
    assert pod_spec_of(job)["restartPolicy"] == "Never"


# ---- patches --------------------------------------------------------------------------------


START = "2024-05-01T12:00:00Z"
T0 = 1714564800.0  # START as a Unix time


def test_end_pod_patch_lowers_the_deadline_to_what_it_ran() -> None:
    pod = {"spec": {"activeDeadlineSeconds": 3600}, "status": {"startTime": START}}
    assert jobs.end_pod_patch(pod, T0 + 125.7) == {"spec": {"activeDeadlineSeconds": 125}}
    assert jobs.end_pod_patch({"status": {"startTime": START}}, T0 + 10) == {
        "spec": {"activeDeadlineSeconds": 10}
    }


def test_end_pod_patch_at_least_one_second() -> None:
    pod = {"spec": {}, "status": {"startTime": START}}
    assert jobs.end_pod_patch(pod, T0) == {"spec": {"activeDeadlineSeconds": 1}}
    assert jobs.end_pod_patch(pod, T0 - 5) == {"spec": {"activeDeadlineSeconds": 1}}


def test_end_pod_patch_none_when_not_started_or_already_shorter() -> None:
    assert jobs.end_pod_patch({"spec": {}, "status": {}}, T0) is None
    assert jobs.end_pod_patch({}, T0) is None
    pod = {"spec": {"activeDeadlineSeconds": 50}, "status": {"startTime": START}}
    assert jobs.end_pod_patch(pod, T0 + 100) is None
    assert jobs.end_pod_patch(pod, T0 + 50) is None
    assert jobs.end_pod_patch(pod, T0 + 49) == {"spec": {"activeDeadlineSeconds": 49}}


def test_end_job_patch() -> None:
    assert jobs.end_job_patch({"spec": {}}) == {"spec": {"activeDeadlineSeconds": 1}}
    assert jobs.end_job_patch({"spec": {"activeDeadlineSeconds": 600}}) == {
        "spec": {"activeDeadlineSeconds": 1}
    }
    assert jobs.end_job_patch({"spec": {"activeDeadlineSeconds": 1}}) is None
    assert "suspend" not in jobs.end_job_patch({"spec": {"suspend": True}})["spec"]


def test_result_patch_round_trips() -> None:
    result = protocol.TrialResult(
        TrialState.PRUNED,
        "EarlyStopped",
        0.42,
        9,
        ((1, 0.9), (3, 0.5), (9, 0.42)),
        "worse than the median",
    )
    patch = jobs.result_patch(result)
    assert list(patch) == ["metadata"]
    (key,) = patch["metadata"]["annotations"]
    assert key == "kubetune.dev/result"
    assert protocol.parse_result(patch["metadata"]["annotations"][key]) == result


def test_result_patch_refuses_an_unfinished_state() -> None:
    with pytest.raises(ValueError, match="not a final state"):
        jobs.result_patch(protocol.TrialResult(TrialState.RUNNING))


# ---- trial RBAC -----------------------------------------------------------------------------


def test_trial_role_allows_get_and_patch_on_pods_only() -> None:
    role = jobs.trial_role("ml")
    assert role["metadata"]["namespace"] == "ml"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]}]
    assert jobs.trial_service_account("ml")["metadata"]["name"] == "kubetune-trial"


def test_trial_role_binding_names() -> None:
    ours = jobs.trial_role_binding("ml", "kubetune-trial")
    theirs = jobs.trial_role_binding("ml", "my-trainer")
    assert ours["metadata"]["name"] == "kubetune-trial"
    assert theirs["metadata"]["name"] == "kubetune-trial-my-trainer"
    assert theirs["subjects"] == [
        {"kind": "ServiceAccount", "name": "my-trainer", "namespace": "ml"}
    ]
    assert theirs["roleRef"]["name"] == "kubetune-trial"
    long = jobs.trial_role_binding("ml", "a" * 200)
    assert len(long["metadata"]["name"]) <= 63
