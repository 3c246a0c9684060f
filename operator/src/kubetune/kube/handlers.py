"""kopf registration: every study event funnels into ``Operator.study_event``, which triggers
the one reconcile. Only ``on.event`` handlers are used, so kopf writes no annotations, status or
finalizers on studies, which stay deletable when the operator is gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from kubetune.kube import client as clients
from kubetune.kube import conventions as names
from kubetune.kube import looplag
from kubetune.kube.reconcile import Operator

__all__ = ["build_registry"]

log = logging.getLogger("kubetune.handlers")


def build_registry(operator: Operator, credentials: clients.Credentials) -> kopf.OperatorRegistry:
    """The registry for one operator process, bound to ``operator``."""
    registry = kopf.OperatorRegistry()
    background: list[asyncio.Task[None]] = []

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=credentials.server, ca_path=credentials.ca_file,
            insecure=credentials.insecure, scheme="Bearer" if credentials.bearer() else None,
            token=credentials.bearer(), certificate_path=credentials.cert_file,
            private_key_path=credentials.key_file, default_namespace=credentials.namespace,
        )

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # our own events say more
        settings.scanning.disabled = True
        settings.watching.server_timeout = 270
        settings.watching.client_timeout = 300
        settings.persistence.finalizer = f"{names.GROUP}/operator"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=names.GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=names.GROUP, key="last-handled-configuration")
        background.append(asyncio.create_task(operator.run()))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await operator.client.close()

    @kopf.on.event(names.GROUP, names.VERSION, names.PLURAL, registry=registry)
    async def study_event(event: kopf.RawEvent, **_: Any) -> None:
        kind = event.get("type") or "ADDED"
        operator.study_event(kind, dict(event["object"]))

    @kopf.on.probe(id="loopLag", registry=registry)
    def loop_lag(**_: Any) -> dict[str, float]:
        # On the liveness endpoint (cached by kopf for 10 s): how late the event loop wakes.
        measured = looplag.lag()
        return {"latestSeconds": round(measured.latest, 4), "maxSeconds": round(measured.max, 4),
                "samples": measured.samples, "overOneSecond": measured.slow}

    return registry
