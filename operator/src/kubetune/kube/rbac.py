"""What trial pods may do, set up in each study namespace: the ServiceAccount
``kubetune-trial``, the Role that lets it read and annotate pods, and the RoleBinding (also
for a template's own ServiceAccount).

Checked at most once per ``recheck`` seconds per (namespace, account) by creating each object
(AlreadyExists means it is there; the chart grants create, not get): an object deleted by hand
is created again, so trials never lose the right to report their metrics for longer than that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from kubetune.kube import conventions as names
from kubetune.kube import errors
from kubetune.kube import jobs as builders
from kubetune.kube.api import Api

__all__ = ["RECHECK_SECONDS", "TrialAccess", "trial_access_objects"]

log = logging.getLogger("kubetune.rbac")

RECHECK_SECONDS = 60.0


def trial_access_objects(namespace: str,
                         account: str | None) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object) of what trial pods running as ``account`` need. Pure."""
    account = account or names.TRIAL_SERVICE_ACCOUNT
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    objects = [
        (f"/api/v1/namespaces/{namespace}/serviceaccounts",
         builders.trial_service_account(namespace)),
        (f"{rbac}/roles", builders.trial_role(namespace)),
        (f"{rbac}/rolebindings", builders.trial_role_binding(namespace, account)),
    ]
    if account != names.TRIAL_SERVICE_ACCOUNT:
        objects = objects[1:]  # the template's own account is the user's to create
    return objects


class TrialAccess:
    def __init__(self, api: Api, *, recheck: float = RECHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.api = api
        self.recheck = recheck
        self.clock = clock
        self._checked: dict[tuple[str, str], float] = {}
        # One check at a time per namespace and account: the reconciles of a namespace's
        # studies that come meanwhile wait for it instead of sending the same creates.
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def ensure(self, namespace: str, account: str | None) -> None:
        """Create what is missing; raises the ApiError of a create or read that failed."""
        key = (namespace, account or names.TRIAL_SERVICE_ACCOUNT)
        if self._fresh(key):
            return
        async with self._locks.setdefault(key, asyncio.Lock()):
            if self._fresh(key):
                return
            for collection, body in trial_access_objects(namespace, account):
                await self._ensure_one(collection, body)
            self._checked[key] = self.clock()

    def _fresh(self, key: tuple[str, str]) -> bool:
        checked = self._checked.get(key)
        return checked is not None and self.clock() - checked < self.recheck

    async def _ensure_one(self, collection: str, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        try:
            await self.api.create(collection, body)
        except errors.AlreadyExists:
            return
        log.info("created %s %s/%s for trial pods", body["kind"],
                 body["metadata"]["namespace"], name)
