"""Writes a study's .status, only when a reader would see a change (``kube.status`` says
what the status is; this decides whether and when to send it, and sends it).

A change that only moves progress along (counts, the best so far, the trial high-water mark,
condition messages; see ``status.routine_change``) waits ``interval`` seconds from the moment
it is first seen, or ``starting`` seconds while the study has trials waiting to start: a
reconcile that comes sooner is told how long to hold it (``hold``) and asks to be run again
then, by which time later changes have merged into the same write. So a trial's end, the Job
created in its place and that Job's pod starting go out as one write, as soon as the pod runs,
and a study's progress is written at most once per interval. Across studies, progress writes
take turns at most ``rate`` a second (first due, first served), so that the operator's status
writes stay bounded however many studies run: with a few studies nothing waits for its turn;
with hundreds, each study's progress shows a little later and several of its trials' ends go
out in one write. Changes a waiting tool reads (phase, conditions, generation, times) are
written at once, and carry any progress held. When each study's held change was first seen and
its turn are all this keeps, and losing them (a restart) costs at most a few more writes.
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


INTERVAL = 2.0  # seconds a progress-only change of one study's status waits for others
STARTING = 10.0  # ... at most, while trials it counts wait to start
# Progress writes a second across all studies. Each trial costs three writes of its own (its
# Job, its result, its pod's release); at two a second, a load that ends more than two trials a
# second shares a progress write between trials, and each study's progress shows within
# (studies / 2) seconds: 100 s with 200 studies running at once.
RATE = 2.0
_FORGET_AFTER = 1024  # studies remembered before stale entries are dropped


class StatusWriter:
    def __init__(self, api: Api, *, interval: float = INTERVAL, starting: float = STARTING,
                 rate: float | None = RATE, clock: Callable[[], float] = time.monotonic):
        self.api = api
        self.writes = 0
        self.interval = interval
        self.starting = max(starting, interval)  # never shorter than the interval
        self.gap = 1.0 / rate if rate else 0.0  # seconds between two studies' progress writes
        self.clock = clock
        self._since: dict[str, float] = {}  # study UID -> when its held change was first seen
        self._turn: dict[str, float] = {}  # study UID -> when its progress may be written
        self._next_turn = float("-inf")

    def hold(self, study: dict[str, Any], status: dict[str, Any], *,
             starting: bool = True) -> float:
        """Seconds to wait before writing ``status`` (0: write it now). Non-zero only for a
        progress-only change, until ``interval`` has passed since the first one not yet
        written (``starting`` while ``status`` counts pending trials that are only starting,
        not waiting for a node or a queue), and then until the study's turn among the
        others."""
        previous = study.get("status") or {}
        if not statuses.conditions_changed(previous, {**previous, **status}):
            return 0.0  # nothing to write: ``write`` sends nothing
        if not statuses.routine_change(previous, status):
            return 0.0
        uid, now = study["metadata"]["uid"], self.clock()
        since = self._since.get(uid)
        if since is None or since > now:  # a clock that steps back never holds it longer
            self._remember(uid, now)
            since = now
        pending = starting and (status.get("trials") or {}).get("pending")
        wait = since + (self.starting if pending else self.interval) - now
        if wait > 0:
            return wait
        turn = self._turn.get(uid)
        if turn is None or turn > now + self.gap * (len(self._turn) + 1):
            # First due, first served; a turn past any the queue could hold came from a clock
            # that stepped back, and is taken again.
            turn = max(now, self._next_turn)
            self._next_turn = turn + self.gap
            self._turn[uid] = turn
        return max(0.0, turn - now)

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
        self._since.pop(meta["uid"], None)
        self._turn.pop(meta["uid"], None)
        study["status"] = updated.get("status") or merged
        version = (updated.get("metadata") or {}).get("resourceVersion")
        if version:  # a new dict: the old one may be shared with the watch that delivered it
            study["metadata"] = {**meta, "resourceVersion": version}
        return True

    def _remember(self, uid: str, now: float) -> None:
        self._since[uid] = now
        if len(self._since) > _FORGET_AFTER:
            # Studies gone or written meanwhile: a live one only waits its interval again.
            stale = now - self.starting - self.gap * len(self._turn)
            self._since = {k: t for k, t in self._since.items() if t > stale}
            self._turn = {k: t for k, t in self._turn.items() if k in self._since}
