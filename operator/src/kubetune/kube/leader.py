"""Leadership through a coordination.k8s.io Lease, so standby replicas wait and take over.

The holder renews the Lease every ``renew`` seconds; a standby takes it once ``renewTime`` is
older than ``leaseDurationSeconds``. Writes use the Lease's resourceVersion, so two replicas
never both believe they lead. A leader that cannot renew in time gives up and exits.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

from kubetune.kube.client import ApiError, Client

__all__ = ["Lease"]

log = logging.getLogger("kubetune.leader")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _micro(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


class Lease:
    def __init__(self, client: Client, namespace: str, name: str, identity: str,
                 duration: int = 15, renew: float = 5.0):
        self.client = client
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration, self.renew = duration, renew

    async def _try(self) -> bool:
        now = _now()
        try:
            lease = await self.client.get(self.path)
        except ApiError as e:
            if e.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {"holderIdentity": self.identity,
                             "leaseDurationSeconds": self.duration,
                             "acquireTime": _micro(now), "renewTime": _micro(now),
                             "leaseTransitions": 0}}
            try:
                await self.client.create(self.collection, body)
                return True
            except ApiError as e2:
                if e2.status == 409:
                    return False
                raise
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime"))
        duration = int(spec.get("leaseDurationSeconds") or self.duration)
        expired = renewed is None or (now - renewed).total_seconds() > duration
        if holder not in (None, "", self.identity) and not expired:
            return False
        if holder != self.identity:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self.duration,
                    renewTime=_micro(now))
        lease["spec"] = spec
        try:
            await self.client.replace(self.path, lease)  # carries resourceVersion: no lost race
            return True
        except ApiError as e:
            if e.status == 409:
                return False
            raise

    async def acquire(self) -> None:
        """Wait until this replica holds the Lease."""
        waiting_logged = False
        while True:
            try:
                if await self._try():
                    log.info("leading as %s (lease %s/%s)", self.identity, self.namespace,
                             self.name)
                    return
            except (ApiError, OSError) as e:
                log.warning("lease %s: %s", self.name, e)
            if not waiting_logged:
                log.info("standing by: lease %s/%s is held by another replica", self.namespace,
                         self.name)
                waiting_logged = True
            await asyncio.sleep(self.renew)

    async def hold(self) -> None:
        """Renew until renewal fails for longer than the lease lasts; then return (lost)."""
        last_ok = _now()
        while True:
            await asyncio.sleep(self.renew)
            try:
                if await self._try():
                    last_ok = _now()
                    continue
                log.error("lease %s was taken by another replica", self.name)
                return
            except (ApiError, OSError) as e:
                log.warning("renewing lease %s: %s", self.name, e)
            if (_now() - last_ok).total_seconds() > self.duration:
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
            spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=_micro(_now()))
            lease["spec"] = spec
            await self.client.replace(self.path, lease)
            log.info("released lease %s", self.name)
        except (ApiError, OSError) as e:
            log.warning("releasing lease %s: %s", self.name, e)
