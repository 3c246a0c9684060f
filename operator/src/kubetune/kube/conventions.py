"""Names that kubetune and the cluster agree on: the API group, labels, annotations, finalizer."""

from __future__ import annotations

import hashlib
import re

from kubetune.core import protocol

__all__ = [
    "API_VERSION",
    "COMPLETION_INDEX",
    "CURVE_ANNOTATION",
    "FINALIZER",
    "GROUP",
    "KIND",
    "METRICS_ANNOTATION",
    "PARAMS_ANNOTATION",
    "PLURAL",
    "RESULT_ANNOTATION",
    "STUDY_LABEL",
    "STUDY_UID_LABEL",
    "TRIAL_KIND_ANNOTATION",
    "TRIAL_LABEL",
    "TRIAL_ROLE",
    "TRIAL_SERVICE_ACCOUNT",
    "VERSION",
    "label_value",
    "study_seed",
    "trial_job_name",
    "worker_host",
    "workers_service_name",
]

GROUP = "kubetune.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TuningStudy"
PLURAL = "tuningstudies"

STUDY_UID_LABEL = "kubetune.dev/study-uid"
STUDY_LABEL = "kubetune.dev/study"
TRIAL_LABEL = "kubetune.dev/trial"

PARAMS_ANNOTATION = protocol.PARAMS_ANNOTATION
RESULT_ANNOTATION = protocol.RESULT_ANNOTATION
METRICS_ANNOTATION = protocol.METRICS_ANNOTATION
CURVE_ANNOTATION = protocol.CURVE_ANNOTATION

# Trial pods carry this finalizer until the operator has copied their result onto the Job.
FINALIZER = "kubetune.dev/result"
# On a trial that is not a Job: how to run and read it (core.workloads.TrialKind, as JSON).
TRIAL_KIND_ANNOTATION = "kubetune.dev/trial-kind"

TRIAL_SERVICE_ACCOUNT = "kubetune-trial"
TRIAL_ROLE = "kubetune-trial"

MAX_NAME = 63

# The label and annotation the Job controller puts on each pod of an Indexed Job.
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def _trim(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+$", "", text[:limit]) or "study"


def trial_job_name(study: str, uid: str, number: int, workers: int = 1) -> str:
    """``<study, shortened>-<5 chars of the study UID>-<n>``: at most 63 characters, and a
    study recreated under the same name never collides with its predecessor's Jobs.

    With several ``workers`` the name leaves room for the Job controller's pod hostnames,
    ``<name>-<index>``, which must be DNS labels too (no dots, at most 63 characters).
    """
    # Room for "-<5 uid chars>-<number>", keeping at least 7 digits' room so that a study's
    # names share one prefix until trial 10,000,000.
    room = MAX_NAME - 1 - 5 - 1 - max(7, len(str(number)))
    if workers > 1:
        room -= 1 + len(str(workers - 1))
        study = study.replace(".", "-")
    return f"{_trim(study, room)}-{uid.replace('-', '')[:5]}-{number}"


def workers_service_name(study: str, uid: str) -> str:
    """The headless Service that gives the workers of a study's trials their names: a DNS
    label that starts with a letter, ``<study, shortened>-<5 chars of the UID>``."""
    text = study.replace(".", "-")
    if not text[0].isalpha():
        text = "s" + text
    return f"{_trim(text, MAX_NAME - 6)}-{uid.replace('-', '')[:5]}"


def worker_host(job: str, service: str, index: int) -> str:
    """The name worker ``index`` of Job ``job`` answers to in its namespace."""
    return f"{job}-{index}.{service}"


def label_value(text: str) -> str:
    """A label value for ``text``: itself when it fits in 63 characters, else a prefix and a
    hash of the whole, so that two long names never share a value.
    """
    if len(text) <= MAX_NAME:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{_trim(text, MAX_NAME - 9)}-{digest}"


def study_seed(uid: str) -> int:
    """The seed of a study that names none: derived from its UID, stable across restarts."""
    return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16)
