"""One reconcile at a time per study, as often as needed and no more.

``trigger(uid)`` marks a study dirty and starts its reconcile unless one is running; a trigger
during a reconcile makes it run once more afterwards, so any number of events in between cost
one reconcile. The reconcile says when to look again (``requeue after N seconds``), which this
schedules; a failed reconcile is retried with a capped exponential backoff, and triggers
meanwhile wait for it, so a lasting error (RBAC, quota) is not retried at event rate.

The safety net against an event that never came: a study is reconciled again ``resync``
seconds after its last reconcile ended, whatever happened meanwhile. Each study keeps its own
timer, pushed back by every reconcile, so studies that events keep busy are not looked at
again for nothing, and the others come due spread over the interval instead of all at once
(at 200 studies, one sweep of every study would queue 200 looks ahead of the next trial).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kubetune.kube.failures import Backoff, FailureLog

__all__ = ["RETRY_CAP_SECONDS", "StudyQueue"]

log = logging.getLogger("kubetune.reconcile")

# Retries back off to this at most, so that work resumes soon after an apiserver outage.
RETRY_CAP_SECONDS = 10.0

Work = Callable[[str], Awaitable[float | None]]
Known = Callable[[str], bool]


class StudyQueue:
    """Serialises ``work(uid)`` per study; ``work`` returns seconds until the next look, or
    None. ``name(uid)`` says which study a log line is about; ``resync``: seconds after a
    study's last reconcile to reconcile it again (None: never), while ``known(uid)`` says the
    study is still there."""

    def __init__(self, work: Work, *, name: Callable[[str], str] = str,
                 retry_cap: float = RETRY_CAP_SECONDS, resync: float | None = None,
                 known: Known = lambda uid: True):
        self.work = work
        self.name = name
        self.retry_cap = retry_cap
        self.resync = resync
        self.known = known
        self._resyncs: dict[str, asyncio.TimerHandle] = {}
        self._dirty: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._not_before: dict[str, float] = {}
        self._backoff: dict[str, Backoff] = {}
        self._failures = FailureLog(log)

    def trigger(self, uid: str) -> None:
        self._dirty.add(uid)
        if uid in self._running:
            return
        loop = asyncio.get_running_loop()
        wait = self._not_before.get(uid, 0.0) - loop.time()
        if wait > 0:
            self._schedule(uid, wait)
            return
        self._running[uid] = loop.create_task(self._drain(uid))

    def forget(self, uid: str) -> None:
        """The study is gone: drop its timers and backoff (a running reconcile finishes)."""
        self._dirty.discard(uid)
        for timers in (self._timers, self._resyncs):
            timer = timers.pop(uid, None)
            if timer is not None:
                timer.cancel()
        self._not_before.pop(uid, None)
        self._backoff.pop(uid, None)
        self._failures.forget(uid)

    def idle(self) -> bool:
        return not self._running

    def _schedule(self, uid: str, after: float) -> None:
        """A trigger in ``after`` seconds, or sooner if one is already due sooner."""
        loop = asyncio.get_running_loop()
        when = loop.time() + after
        timer = self._timers.get(uid)
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
        self._timers[uid] = loop.call_at(when, self._fire, uid)

    def _fire(self, uid: str) -> None:
        self._timers.pop(uid, None)
        self.trigger(uid)

    async def _drain(self, uid: str) -> None:
        try:
            while uid in self._dirty:
                self._dirty.discard(uid)
                try:
                    after = await self.work(uid)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    backoff = self._backoff.setdefault(uid, Backoff(cap=self.retry_cap))
                    delay = backoff.next()
                    self._failures.failed(uid, f"reconcile of study {self.name(uid)}", e)
                    self._not_before[uid] = asyncio.get_running_loop().time() + delay
                    self._dirty.discard(uid)
                    self._schedule(uid, delay)
                    return
                self._not_before.pop(uid, None)
                if self._backoff.pop(uid, None) is not None:
                    self._failures.succeeded(uid, f"reconcile of study {self.name(uid)}")
                if after is not None:
                    self._schedule(uid, after)
            self._arm_resync(uid)
        finally:
            self._running.pop(uid, None)

    def _arm_resync(self, uid: str) -> None:
        """The study's resync, ``resync`` seconds from now (a later one than it had)."""
        timer = self._resyncs.pop(uid, None)
        if timer is not None:
            timer.cancel()
        if self.resync is not None and self.known(uid):
            self._resyncs[uid] = asyncio.get_running_loop().call_later(
                self.resync, self._resync_due, uid)

    def _resync_due(self, uid: str) -> None:
        self._resyncs.pop(uid, None)
        if self.known(uid):
            self.trigger(uid)
