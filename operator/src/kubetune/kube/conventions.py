"""Names that kubetune and the cluster agree on: the API group, labels, annotations, finalizer."""

from __future__ import annotations

import hashlib
import re

from kubetune.core import protocol

__all__ = [
    "API_VERSION",
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
    "TRIAL_LABEL",
    "TRIAL_ROLE",
    "TRIAL_SERVICE_ACCOUNT",
    "VERSION",
    "label_value",
    "study_seed",
    "trial_job_name",
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

TRIAL_SERVICE_ACCOUNT = "kubetune-trial"
TRIAL_ROLE = "kubetune-trial"

MAX_NAME = 63


def _trim(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+$", "", text[:limit]) or "study"


def trial_job_name(study: str, uid: str, number: int) -> str:
    """``<study, shortened>-<5 chars of the study UID>-<n>``: at most 63 characters, and a
    study recreated under the same name never collides with its predecessor's Jobs.
    """
    # Room for "-<5 uid chars>-<number>", keeping at least 7 digits' room so that a study's
    # names share one prefix until trial 10,000,000.
    room = MAX_NAME - 1 - 5 - 1 - max(7, len(str(number)))
    return f"{_trim(study, room)}-{uid.replace('-', '')[:5]}-{number}"


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
