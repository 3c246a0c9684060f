"""Writes a study's .status, only when a reader would see a change (``kube.status`` says
what the status is; this decides whether to send it, and sends it)."""

from __future__ import annotations

import logging
from typing import Any

from kubetune.kube import api as paths
from kubetune.kube import errors
from kubetune.kube import status as statuses
from kubetune.kube.api import Api

__all__ = ["StatusWriter"]

log = logging.getLogger("kubetune.status")


class StatusWriter:
    def __init__(self, api: Api):
        self.api = api
        self.writes = 0

    async def write(self, study: dict[str, Any], status: dict[str, Any]) -> bool:
        """Merge-patch ``status`` onto ``study`` unless nothing visible changes; on success
        ``study`` holds what the server answered. False when nothing was written (no change,
        or the study is gone)."""
        previous = study.get("status") or {}
        merged = {**previous, **status}
        if not statuses.conditions_changed(previous, merged):
            return False
        meta = study["metadata"]
        try:
            updated = await self.api.merge_patch(
                paths.study_path(meta["namespace"], meta["name"]) + "/status",
                {"status": status})
        except errors.NotFound:
            log.debug("study %s/%s is gone: its status is not written", meta["namespace"],
                      meta["name"])
            return False
        self.writes += 1
        study["status"] = updated.get("status") or merged
        version = (updated.get("metadata") or {}).get("resourceVersion")
        if version:  # a new dict: the old one may be shared with the watch that delivered it
            study["metadata"] = {**meta, "resourceVersion": version}
        return True
