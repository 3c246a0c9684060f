"""Trial logs for ``metricsFrom.log``: bounded reads of a container's log through the
pods/log API, the kubelet's own, with no sidecar in the trial's pod.

A trial's log is read when its Job has ended and its result is not recorded yet (then it
decides the result), and, while it runs, when early stopping watches it: at most once every
``interval`` seconds per pod, the text read last serving the reconciles in between. Each
read asks for the last ``TAIL_LINES`` lines and at most ``LIMIT_BYTES`` bytes; when that
many bytes come back (long lines), the last ``SHORT_TAIL_LINES`` lines are read instead, so
the newest lines are never the ones cut. A read the kubelet does not answer (its node is down)
leaves that trial for a later read, logged once; a read the operator may not make (RBAC)
fails the reconcile. Only the lines that match the pattern are kept,
at most ``KEPT_BYTES`` of the newest, and between reconciles only for pods that still run: a
restarted operator reads again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from kubetune.kube import api as paths
from kubetune.kube import errors
from kubetune.kube.api import Api
from kubetune.kube.failures import FailureLog
from kubetune.kube.observe import TrialObjects, has_result, job_ended

__all__ = ["INTERVAL", "LIMIT_BYTES", "TAIL_LINES", "LogReader"]

log = logging.getLogger("kubetune.logs")

INTERVAL = 10.0
TAIL_LINES = 5000
SHORT_TAIL_LINES = 200
LIMIT_BYTES = 1024 * 1024
KEPT_BYTES = 64 * 1024


class _UnreadableError(Exception):
    """A log read that failed for now; the trial waits for the next."""


class LogReader:
    """Reads the logs a reconcile needs; ``clock`` times the reads of running trials."""

    def __init__(self, api: Api, clock: Callable[[], float], interval: float = INTERVAL):
        self.api = api
        self.clock = clock
        self.interval = interval
        self.failures = FailureLog(log)
        # study uid -> running pod uid -> (read at, matching lines)
        self._last: dict[str, dict[str, tuple[float, str]]] = {}

    async def _read(self, pod: Mapping[str, Any], container: str,
                    pattern: re.Pattern[str]) -> str | None:
        """The lines of ``container``'s log tail that match ``pattern``, or None when there is
        no log to read (the pod or its container is gone, or has not started)."""
        meta = pod["metadata"]
        path = paths.pod_log_path(meta["namespace"], meta["name"])
        key = f"log {meta['namespace']}/{meta['name']}"
        what = (f"reading the log of pod {meta['namespace']}/{meta['name']} (its trial is "
                "judged once it can be read)")
        try:
            text = await self.api.text(path, container=container, tailLines=str(TAIL_LINES),
                                       limitBytes=str(LIMIT_BYTES))
            if len(text.encode()) >= LIMIT_BYTES:
                text = await self.api.text(path, container=container,
                                           tailLines=str(SHORT_TAIL_LINES),
                                           limitBytes=str(LIMIT_BYTES))
        except (errors.NotFound, errors.BadRequest) as e:
            # BadRequest: the container is waiting to start, or was never created.
            log.info("no log of %s/%s container %s: %s", meta["namespace"], meta["name"],
                     container, e.message)
            self.failures.forget(key)
            return None
        except (errors.Forbidden, errors.Unauthorized):
            raise  # the operator's RBAC lacks pods/log: every trial's log would fail alike
        except errors.ApiError as e:
            # The kubelet behind the API server did not answer (its node is down, a timeout):
            # this trial waits, judged on a later read; the study's other trials go on.
            self.failures.failed(key, what, e, level=logging.WARNING)
            raise _UnreadableError from e
        self.failures.succeeded(key, what)
        kept = "\n".join(line for line in text.splitlines() if pattern.search(line))
        return kept[-KEPT_BYTES:].partition("\n")[2] if len(kept) > KEPT_BYTES else kept

    async def read(self, study_uid: str, trials: Mapping[int, TrialObjects], container: str,
                   pattern: str, *, running_too: bool) -> tuple[dict[int, str], float | None]:
        """(matching log lines per trial number, seconds until a running trial's log is due
        again, or None when none is watched).

        Ended trials without a recorded result are read every time; an ended trial whose pod
        is gone reads as an empty log. Running ones only with ``running_too`` (early
        stopping), at most once per ``interval``.
        """
        compiled = re.compile(pattern)
        now = self.clock()
        out: dict[int, str] = {}
        before = self._last.pop(study_uid, {})
        kept: dict[str, tuple[float, str]] = {}
        due: float | None = None
        for number, objs in trials.items():
            pod = objs.current_pod
            if objs.job is None or has_result(objs.job):
                continue
            if job_ended(objs.job):
                try:
                    text = None if pod is None else await self._read(pod, container, compiled)
                except _UnreadableError:
                    due = self.interval if due is None else min(due, self.interval)
                    continue
                out[number] = text or ""
                continue
            if not running_too or pod is None or pod.get("status", {}).get("phase") != "Running":
                continue
            uid = str(pod["metadata"].get("uid") or pod["metadata"]["name"])
            last = before.get(uid)
            if last is None or now - last[0] >= self.interval:
                try:
                    text = await self._read(pod, container, compiled)
                except _UnreadableError:
                    text = None if last is None else last[1]
                last = (now, text or "")
            kept[uid] = last
            out[number] = last[1]
            wait = max(last[0] + self.interval - now, 0.0)
            due = wait if due is None else min(due, wait)
        if kept:
            self._last[study_uid] = kept
        return out, due
