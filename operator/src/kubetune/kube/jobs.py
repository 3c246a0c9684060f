"""Pure builders of what the operator writes: a trial's Job, the patches that end a trial, and
the trial ServiceAccount's Role. No I/O here; ``reconcile`` sends what these return.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from kubetune.core import protocol, stopping, workloads
from kubetune.core import spec as specs
from kubetune.core.space import env_var_name
from kubetune.core.spec import StudySpec
from kubetune.kube import api as paths
from kubetune.kube import conventions as names
from kubetune.kube import signing

__all__ = [
    "build_trial",
    "build_trial_job",
    "build_trial_workload",
    "end_job_patch",
    "end_pod_patch",
    "param_env_value",
    "result_patch",
    "trial_kind",
    "trial_path",
    "trial_role",
    "trial_role_binding",
    "trial_service_account",
    "workers_service",
]

# A pod its node lost (eviction, preemption, drain, node gone) is re-run, up to backoffLimit
# (budget.maxRetries); a container that exited non-zero is the trial's result: the Job fails.
_COUNT_DISRUPTIONS = {"action": "Count", "onPodConditions": [{"type": "DisruptionTarget"}]}
_FAIL_ON_EXIT_CODE = {"action": "FailJob",
                      "onExitCodes": {"operator": "NotIn", "values": [0]}}


def param_env_value(value: Any) -> str:
    """How a parameter value reads in its KUBETUNE_PARAM_<NAME> variable."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def trial_kind(obj: Mapping[str, Any]) -> workloads.TrialKind | None:
    """What a trial object that is not a Job says of its kind; None for a Job."""
    text = (obj.get("metadata", {}).get("annotations") or {}).get(names.TRIAL_KIND_ANNOTATION)
    return None if text is None else workloads.TrialKind.decode(text)


def trial_path(obj: Mapping[str, Any]) -> str:
    """The API path of a trial object, a Job or another kind."""
    meta = obj["metadata"]
    kind = trial_kind(obj)
    if kind is None:
        return paths.job_path(meta["namespace"], meta["name"])
    return f"{kind.collection(meta['namespace'])}/{meta['name']}"


def _trial_env(
    study: str, number: int, spec: StudySpec, params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    # The SDK thins curves keeping the steps early stopping judges at, in the right direction.
    keep = stopping.keep_steps(spec.early_stopping)
    env: list[dict[str, Any]] = [
        {"name": "KUBETUNE_PARAMS", "value": protocol.encode_params(params)},
        {"name": "KUBETUNE_STUDY", "value": study},
        {"name": "KUBETUNE_TRIAL", "value": str(number)},
        {"name": "KUBETUNE_METRIC", "value": specs.watched(spec).metric},
        {"name": "KUBETUNE_DIRECTION", "value": specs.watched(spec).direction},
        {"name": "KUBETUNE_KEEP_STEPS", "value": ",".join(str(s) for s in keep)},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    env += [{"name": env_var_name(k), "value": param_env_value(v)} for k, v in params.items()]
    return env


def _worker_env(job: str, service: str, spec: StudySpec) -> list[dict[str, Any]]:
    """What torch.distributed (init_method env://) and torchrun read, for each worker: worker
    0's name and port, the number of workers, and this worker's rank, its completion index."""
    index = {"fieldRef": {"fieldPath": f"metadata.annotations['{names.COMPLETION_INDEX}']"}}
    return [
        {"name": "MASTER_ADDR", "value": names.worker_host(job, service, 0)},
        {"name": "MASTER_PORT", "value": str(spec.trial.port)},
        {"name": "WORLD_SIZE", "value": str(spec.trial.workers)},
        {"name": "RANK", "valueFrom": index},
        {"name": "LOCAL_RANK", "value": "0"},
        {"name": "LOCAL_WORLD_SIZE", "value": "1"},
    ]


def _with_env(container: dict[str, Any], ours: list[dict[str, Any]]) -> dict[str, Any]:
    taken = {e["name"] for e in ours}
    kept = [e for e in container.get("env") or [] if e.get("name") not in taken]
    # Ours come first, so that the user's own variables can refer to them with $(VAR).
    return {**container, "env": ours + kept}


def _dress_pod(pod: dict[str, Any], labels: Mapping[str, str], ours: list[dict[str, Any]],
               timeout: int | None) -> None:
    """What every pod template of a trial gets: kubetune's labels, the result finalizer, the
    trial's environment, the trial ServiceAccount unless it names one, and the timeout."""
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    pod_meta["finalizers"] = [
        *[f for f in pod_meta.get("finalizers") or [] if f != names.FINALIZER], names.FINALIZER
    ]
    pod_spec = pod.setdefault("spec", {})
    pod_spec["containers"] = [_with_env(c, ours) for c in pod_spec.get("containers") or []]
    if pod_spec.get("initContainers"):
        pod_spec["initContainers"] = [_with_env(c, ours) for c in pod_spec["initContainers"]]
    # The deprecated serviceAccount field names an account too; honour it.
    pod_spec.setdefault("serviceAccountName",
                        pod_spec.get("serviceAccount") or names.TRIAL_SERVICE_ACCOUNT)
    if timeout is not None:
        given = pod_spec.get("activeDeadlineSeconds")
        pod_spec["activeDeadlineSeconds"] = timeout if given is None else min(given, timeout)


def _owned(study: Mapping[str, Any]) -> list[dict[str, Any]]:
    meta = study["metadata"]
    return [{"apiVersion": names.API_VERSION, "kind": names.KIND, "name": meta["name"],
             "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]


def build_trial(
    study: Mapping[str, Any], spec: StudySpec, number: int, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The object of trial ``number``: its Job, or its trialTemplate resource."""
    if spec.trial_template is not None:
        return build_trial_workload(study, spec, number, params)
    return build_trial_job(study, spec, number, params)


def build_trial_workload(
    study: Mapping[str, Any], spec: StudySpec, number: int, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The resource of trial ``number`` from ``spec.trialTemplate`` (e.g. a JobSet): kubetune's
    labels and params annotation on it, every pod template inside it dressed as a trial Job's
    pod (``_dress_pod``), and the kind's description (``workloads.TrialKind``) as an annotation,
    so that the operator reads it without the study's spec."""
    meta = study["metadata"]
    template = copy.deepcopy(spec.trial_template or {})
    kind = workloads.kind_of(template)
    assert kind is not None  # the spec was validated
    labels = {
        names.STUDY_UID_LABEL: meta["uid"],
        names.STUDY_LABEL: names.label_value(meta["name"]),
        names.TRIAL_LABEL: str(number),
    }
    body = template.get("spec") or {}
    ours = _trial_env(meta["name"], number, spec, params)
    for pod in workloads.pod_templates(body):
        _dress_pod(pod, labels, ours, spec.budget.trial_timeout_seconds)
    own = template.get("metadata") or {}
    return {
        "apiVersion": template["apiVersion"],
        "kind": template["kind"],
        "metadata": {
            "name": names.trial_job_name(meta["name"], meta["uid"], number),
            "namespace": meta["namespace"],
            "labels": {**(own.get("labels") or {}), **labels},
            "annotations": {
                **(own.get("annotations") or {}),
                names.PARAMS_ANNOTATION: protocol.encode_params(params),
                names.TRIAL_KIND_ANNOTATION: kind.encode(),
            },
            "ownerReferences": _owned(study),
        },
        "spec": body,
    }


def build_trial_job(
    study: Mapping[str, Any], spec: StudySpec, number: int, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The Job of trial ``number``: the study's jobTemplate as given, plus kubetune's labels,
    params annotation, owner reference, env vars, result finalizer, timeout and retry rules.
    """
    meta = study["metadata"]
    study_name, uid = meta["name"], meta["uid"]
    workers = spec.trial.workers
    name = names.trial_job_name(study_name, uid, number, workers)
    template = copy.deepcopy(spec.job_template or {})
    job_meta = template.get("metadata") or {}
    job_spec = template.get("spec") or {}
    labels = {
        names.STUDY_UID_LABEL: uid,
        names.STUDY_LABEL: names.label_value(study_name),
        names.TRIAL_LABEL: str(number),
    }
    pod = job_spec.setdefault("template", {})
    pod_spec = pod.setdefault("spec", {})
    ours = _trial_env(study_name, number, spec, params)
    if workers > 1:
        # One Indexed Job: pod i is named <job>-i in the study's headless Service.
        service = names.workers_service_name(study_name, uid)
        job_spec.update(completionMode="Indexed", completions=workers, parallelism=workers)
        pod_spec["subdomain"] = service
        ours += _worker_env(name, service, spec)
    # restartPolicy must be set for the disruption rule below; Never is what a trial wants.
    pod_spec.setdefault("restartPolicy", "Never")
    _dress_pod(pod, labels, ours, spec.budget.trial_timeout_seconds)
    # Failures the pod failure policy counts (its node lost it, or it never started) are
    # re-run up to maxRetries; the training code's own failures fail the Job at once.
    job_spec["backoffLimit"] = spec.budget.max_retries
    if pod_spec["restartPolicy"] == "Never":
        policy = job_spec.setdefault("podFailurePolicy", {})
        own_rules = (_COUNT_DISRUPTIONS, _FAIL_ON_EXIT_CODE)
        rules = [r for r in policy.get("rules") or [] if r not in own_rules]
        policy["rules"] = copy.deepcopy([_COUNT_DISRUPTIONS, *rules, _FAIL_ON_EXIT_CODE])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {**(job_meta.get("labels") or {}), **labels},
            "annotations": {
                **(job_meta.get("annotations") or {}),
                names.PARAMS_ANNOTATION: protocol.encode_params(params),
            },
            "ownerReferences": _owned(study),
        },
        "spec": job_spec,
    }


def result_patch(result: protocol.TrialResult, job: Mapping[str, Any] | None = None,
                 key: bytes | signing.Keyring | None = None, *,
                 stop: bool = False) -> dict[str, Any]:
    """The merge patch that records a trial's result on ``job``, signed with ``key`` (a
    keyring's signing key) when given (see ``kube.signing``), so that the operator can tell an
    edited result. With ``stop`` (the operator ends the trial) it also sets the Job's
    backoffLimit to 0, so that the pod the operator ends is not run again as a lost one.
    """
    text = protocol.encode_result(result)
    annotations = {names.RESULT_ANNOTATION: text}
    if key is not None and job is not None:
        annotations[signing.SIGNATURE_ANNOTATION] = signing.sign(key, job, text)
    patch: dict[str, Any] = {"metadata": {"annotations": annotations}}
    if stop and (job is None or trial_kind(job) is None):
        patch["spec"] = {"backoffLimit": 0}
    return patch


def end_pod_patch(pod: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    """The patch that ends a running pod by lowering its activeDeadlineSeconds to what it has
    already run, or None when the pod has not started or already has a shorter deadline.
    """
    from kubetune.kube.observe import parse_time

    started = parse_time(pod.get("status", {}).get("startTime"))
    if started is None:
        return None
    ran = max(1, int(now - started))
    current = pod.get("spec", {}).get("activeDeadlineSeconds")
    if current is not None and current <= ran:
        return None
    return {"spec": {"activeDeadlineSeconds": ran}}


def end_job_patch(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The patch that ends a Job whose pod has not started (Pending for a node or a GPU): a
    Job-level deadline of 1 s, after which the Job controller removes its pods.
    """
    current = job.get("spec", {}).get("activeDeadlineSeconds")
    if current is not None and current <= 1:
        return None
    return {"spec": {"activeDeadlineSeconds": 1}}


def workers_service(study: Mapping[str, Any], spec: StudySpec) -> dict[str, Any]:
    """The headless Service that names the workers of a study's trials (``trial.workers``
    above 1): it selects the study's trial pods, publishes them before they are ready (worker
    0 must be found while the others start), and goes with the study."""
    meta = study["metadata"]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": names.workers_service_name(meta["name"], meta["uid"]),
            "namespace": meta["namespace"],
            "labels": {names.STUDY_UID_LABEL: meta["uid"],
                       names.STUDY_LABEL: names.label_value(meta["name"]),
                       "app.kubernetes.io/managed-by": "kubetune"},
            "ownerReferences": [{
                "apiVersion": names.API_VERSION, "kind": names.KIND, "name": meta["name"],
                "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {names.STUDY_UID_LABEL: meta["uid"]},
            "ports": [{"name": "workers", "port": spec.trial.port, "protocol": "TCP"}],
        },
    }


def trial_service_account(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": names.TRIAL_SERVICE_ACCOUNT, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "kubetune"}},
    }


def trial_role(namespace: str) -> dict[str, Any]:
    """What a trial's process may do: read and annotate pods. The ValidatingAdmissionPolicy
    narrows it to the trial's own pod and to kubetune.dev/* annotations.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": names.TRIAL_ROLE, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "kubetune"}},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]}],
    }


def trial_role_binding(namespace: str, service_account: str) -> dict[str, Any]:
    """Binds the trial Role to ``service_account`` (kubetune-trial, or a template's own)."""
    suffix = "" if service_account == names.TRIAL_SERVICE_ACCOUNT else f"-{service_account}"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": names.label_value(names.TRIAL_ROLE + suffix), "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "kubetune"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": names.TRIAL_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": service_account,
                      "namespace": namespace}],
    }
