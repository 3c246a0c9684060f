"""Writes a study's .status, only when a reader would see a change (``kube.status`` says
what the status is; this decides whether and when to send it, and sends it).

A change that only moves progress along (counts, the best so far, condition messages; see
``status.routine_change``) is written at most once per ``interval`` seconds per study: a
reconcile that comes sooner is told how long to hold it (``hold``) and asks to be run again
then, by which time later changes have merged into the same write. Changes a waiting tool or
the trial numbering reads (phase, conditions, generation, the trial high-water mark) are
written at once. The last write's time is all this keeps, and losing it (a restart) costs one
early write, nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kubetune.kube import api as paths
from kubetune.kube import errors
from kubetune.kube import status as statuses
from kubetune.kube.api import Api

__all__ = ["StatusWriter"]

log = logging.getLogger("kubetune.status")


INTERVAL = 1.0  # seconds between progress-only writes of one study's status
_FORGET_AFTER = 1024  # studies remembered before entries older than the interval are dropped


class StatusWriter:
    def __init__(self, api: Api, *, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.api = api
        self.writes = 0
        self.interval = interval
        self.clock = clock
        self._written_at: dict[str, float] = {}  # study UID -> when its status was written

    def hold(self, study: dict[str, Any], status: dict[str, Any]) -> float:
        """Seconds to wait before writing ``status`` (0: write it now). Non-zero only for a
        progress-only change that comes within ``interval`` of the study's last write."""
        previous = study.get("status") or {}
        if not statuses.routine_change(previous, status):
            return 0.0
        last = self._written_at.get(study["metadata"]["uid"])
        if last is None:
            return 0.0
        # Clamped, so a clock that steps back never holds a status longer than the interval.
        return min(self.interval, max(0.0, last + self.interval - self.clock()))

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
        self._remember(meta["uid"])
        study["status"] = updated.get("status") or merged
        version = (updated.get("metadata") or {}).get("resourceVersion")
        if version:  # a new dict: the old one may be shared with the watch that delivered it
            study["metadata"] = {**meta, "resourceVersion": version}
        return True

    def _remember(self, uid: str) -> None:
        now = self.clock()
        self._written_at[uid] = now
        if len(self._written_at) > _FORGET_AFTER:
            self._written_at = {k: t for k, t in self._written_at.items()
                                if t + self.interval > now}
