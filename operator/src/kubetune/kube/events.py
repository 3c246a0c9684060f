"""Events on a study, for ``kubectl describe`` and ``kubectl events``.

An event that cannot be posted costs the study nothing but the event: it is logged once
(see ``failures``) and the reconcile goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from kubetune.core import times
from kubetune.kube import api as paths
from kubetune.kube import conventions as names
from kubetune.kube import errors
from kubetune.kube.api import Api
from kubetune.kube.failures import FailureLog

__all__ = ["EventPoster", "event"]

log = logging.getLogger("kubetune.events")

MAX_MESSAGE = 1024


def event(study: Mapping[str, Any], reason: str, message: str, kind: str,
          now: float) -> dict[str, Any]:
    """The core/v1 Event about ``study``. Pure."""
    meta = study["metadata"]
    stamp = times.rfc3339(now)
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": names.API_VERSION, "kind": names.KIND,
                           "name": meta["name"], "namespace": meta["namespace"],
                           "uid": meta["uid"]},
        "reason": reason, "message": message[:MAX_MESSAGE], "type": kind,
        "source": {"component": "kubetune-operator"},
        "reportingComponent": "kubetune.dev/operator", "reportingInstance": "kubetune",
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


class EventPoster:
    def __init__(self, api: Api):
        self.api = api
        self._failures = FailureLog(log)

    async def post(self, study: Mapping[str, Any], reason: str, message: str,
                   kind: str = "Normal") -> None:
        ns = study["metadata"]["namespace"]
        try:
            await self.api.create(paths.events_path(ns), event(study, reason, message, kind,
                                                                 time.time()))
        except (errors.ApiError, OSError, TimeoutError) as e:
            self._failures.failed(ns, f"posting events in namespace {ns} (the study goes on; "
                                      f"`kubectl describe` misses them)", e,
                                  level=logging.WARNING)
            return
        self._failures.succeeded(ns, f"posting events in namespace {ns}")
