"""Leadership through a coordination.k8s.io Lease, so standby replicas wait and take over.

The holder renews the Lease every ``renew`` seconds; a standby takes it once ``renewTime`` is
older than ``leaseDurationSeconds``. Writes use the Lease's resourceVersion, so two replicas
never both believe they lead. A leader that cannot renew in time gives up and exits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from kubetune.core import times
from kubetune.kube import errors
from kubetune.kube.api import Api
from kubetune.kube.failures import FailureLog

__all__ = ["LEASE_SECONDS", "RENEW_SECONDS", "Lease", "takeover_bound"]

log = logging.getLogger("kubetune.leader")

LEASE_SECONDS = 15
RENEW_SECONDS = 5.0

# What a Lease call may fail with and be retried: the apiserver's answers, or no answer.
_TRANSIENT = (errors.ApiError, OSError, TimeoutError)


def takeover_bound(duration: float, renew: float) -> float:
    """The longest a standby waits, after the leader's last renewal, before it leads: the
    Lease must expire (``duration``), then the standby's next try comes within ``renew``."""
    return duration + renew


class Lease:
    """``acquire`` (wait to lead), ``hold`` (renew until lost), ``release`` (hand over now).
    ``clock`` gives Unix seconds (the Lease's times are wall-clock RFC 3339)."""

    def __init__(self, client: Api, namespace: str, name: str, identity: str,
                 duration: int = LEASE_SECONDS, renew: float = RENEW_SECONDS,
                 clock: Callable[[], float] = time.time):
        self.client = client
        self.clock = clock
        self._failures = FailureLog(log)
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration, self.renew = duration, renew

    async def _try(self) -> bool:
        now = self.clock()
        try:
            lease = await self.client.get(self.path)
        except errors.NotFound:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity,
                             "leaseDurationSeconds": self.duration,
                             "acquireTime": times.rfc3339_micro(now),
                             "renewTime": times.rfc3339_micro(now), "leaseTransitions": 0}}
            try:
                await self.client.create(self.collection, body)
                return True
            except errors.AlreadyExists:
                return False  # another replica created it first
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = times.parse_rfc3339(spec.get("renewTime"))
        duration = int(spec.get("leaseDurationSeconds") or self.duration)
        expired = renewed is None or now - renewed > duration
        if holder not in (None, "", self.identity) and not expired:
            return False
        if holder != self.identity:
            spec["acquireTime"] = times.rfc3339_micro(now)
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self.duration,
                    renewTime=times.rfc3339_micro(now))
        lease["spec"] = spec
        try:
            await self.client.replace(self.path, lease)  # carries resourceVersion: no lost race
            return True
        except errors.Conflict:
            return False  # another replica wrote it since we read it

    async def acquire(self) -> None:
        """Wait until this replica holds the Lease."""
        waiting_logged = False
        while True:
            try:
                if await self._try():
                    log.info("leading as %s (lease %s/%s)", self.identity, self.namespace,
                             self.name)
                    return
                self._failures.succeeded("acquire", f"reading lease {self.name}")
            except _TRANSIENT as e:
                self._failures.failed("acquire", f"reading lease {self.name} (this replica "
                                                 "stands by until it can)", e,
                                      level=logging.WARNING)
            if not waiting_logged:
                log.info("standing by: lease %s/%s is held by another replica", self.namespace,
                         self.name)
                waiting_logged = True
            await asyncio.sleep(self.renew)

    async def hold(self) -> None:
        """Renew until renewal fails for longer than the lease lasts; then return (lost)."""
        last_ok = self.clock()
        while True:
            await asyncio.sleep(self.renew)
            try:
                if await self._try():
                    last_ok = self.clock()
                    self._failures.succeeded("renew", f"renewing lease {self.name}")
                    continue
                log.error("lease %s was taken by another replica", self.name)
                return
            except _TRANSIENT as e:
                self._failures.failed("renew", f"renewing lease {self.name} (this replica "
                                               f"stops leading after {self.duration} s without "
                                               "a renewal)", e, level=logging.WARNING)
            if self.clock() - last_ok > self.duration:
                log.error("could not renew lease %s for %d s", self.name, self.duration)
                return

    async def release(self) -> None:
        """Give the Lease up on a clean shutdown, so a standby takes over at once instead of
        waiting for it to expire."""
        try:
            lease = await self.client.get(self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update(holderIdentity=None, leaseDurationSeconds=1,
                        renewTime=times.rfc3339_micro(self.clock()))
            lease["spec"] = spec
            await self.client.replace(self.path, lease)
            log.info("released lease %s", self.name)
        except _TRANSIENT as e:
            # The standby then takes over when the Lease expires instead of at once.
            log.warning("releasing lease %s failed (a standby takes over in %d s instead of "
                        "at once): %s", self.name, self.duration, e)
