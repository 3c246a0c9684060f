"""``python -m kubetune``: run the operator.

    python -m kubetune [--namespace NS ...] [--liveness URL] [--leader-elect]
                       [--lease-namespace NS] [--log-format json|plain]
                       [--workload RESOURCE.GROUP/VERSION ...] [--sampler-processes N]

Without ``--namespace`` it watches all namespaces. With ``--leader-elect`` replicas share a
coordination.k8s.io Lease: one leads, the others stand by and take over when it is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

__all__ = ["main"]

log = logging.getLogger("kubetune")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubetune", description="the kubetune operator")
    p.add_argument("--namespace", "-n", action="append", default=[],
                   help="watch this namespace (repeatable); default: all namespaces")
    p.add_argument("--liveness", default=os.environ.get("KUBETUNE_LIVENESS"),
                   help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    p.add_argument("--metrics", default=os.environ.get("KUBETUNE_METRICS"),
                   help="serve Prometheus metrics, e.g. http://0.0.0.0:8081/metrics")
    p.add_argument("--leader-elect", action="store_true",
                   default=os.environ.get("KUBETUNE_LEADER_ELECT") == "true")
    p.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE"))
    p.add_argument("--lease-name", default="kubetune-operator")
    p.add_argument("--log-format", choices=["json", "plain"],
                   default=os.environ.get("KUBETUNE_LOG_FORMAT", "plain"))
    p.add_argument("--workload", action="append",
                   default=[w for w in os.environ.get("KUBETUNE_WORKLOADS", "").split(",") if w],
                   metavar="RESOURCE.GROUP/VERSION",
                   help="also run trials of this kind (a study's trialTemplate), e.g. "
                        "jobsets.jobset.x-k8s.io/v1alpha2 (repeatable)")
    p.add_argument("--sampler-processes", type=int,
                   default=int(os.environ.get("KUBETUNE_SAMPLER_PROCESSES", "1")),
                   metavar="N",
                   help="run the samplers in N processes of their own, at a lower CPU priority, "
                        "so a slow sampler (a GP fit) never slows the other studies (default 1; "
                        "0: in the operator's process)")
    p.add_argument("--verbose", "-v", action="store_true")
    args = p.parse_args(argv)
    if args.sampler_processes < 0:
        p.error(f"--sampler-processes: {args.sampler_processes} is negative; give 0 (samplers "
                "in the operator's process) or more")
    from kubetune.core.workloads import Resource

    try:
        args.workload = [Resource.parse(w) for w in args.workload]
    except ValueError as e:
        p.error(f"--workload: {e}")
    return args


async def _run(args: argparse.Namespace) -> int:
    from kubetune.kube import client as clients
    from kubetune.kube import conventions as names
    from kubetune.kube import credentials as logins
    from kubetune.kube import errors
    from kubetune.kube.leader import Lease
    from kubetune.kube.metrics import Metrics
    from kubetune.kube.metrics import serve as serve_metrics

    # One login for kopf and for our own client: the kubernetes package's loader, in memory.
    login = logins.Login()
    try:
        credentials = await asyncio.to_thread(login.current)
    except logins.CredentialsError as e:
        log.error("cannot log in to Kubernetes: %s", e)
        return 1
    client = clients.Client(login)
    try:
        await client.get(f"/apis/{names.GROUP}/{names.VERSION}")
    except errors.NotFound:
        # Without the CRD kopf would watch nothing, and would not notice it appear later.
        log.error("the TuningStudy CRD (%s.%s) is not installed: apply crds/tuningstudy.yaml "
                  "or install the Helm chart, then start the operator again",
                  names.PLURAL, names.GROUP)
        return 1
    for workload in args.workload:
        problem = await _workload_problem(client, workload)
        if problem is not None:
            # Its watch would never sync, and no study would be reconciled meanwhile.
            log.error("--workload %s: %s", workload.name, problem)
            return 1
    metrics = Metrics()
    if args.metrics:
        serve_metrics(metrics, args.metrics)
    lease = None
    if args.leader_elect:
        identity = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        lease = Lease(client, args.lease_namespace or credentials.namespace, args.lease_name,
                      identity)
        # A standby answers its liveness probe while it waits, so it is not restarted.
        async with standby_liveness(args.liveness):
            await lease.acquire()
    samplers = None
    if args.sampler_processes:
        from kubetune.kube.sampling import SamplerProcesses

        samplers = SamplerProcesses(args.sampler_processes)
        # Started beside the operator's own start, which does not wait for their imports.
        warming = asyncio.create_task(asyncio.to_thread(samplers.warm_up))
        warming.add_done_callback(_warmed)
    try:
        return await _serve(args, client, credentials, metrics, lease, samplers)
    finally:
        if samplers is not None:
            await asyncio.to_thread(samplers.close)


def _warmed(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("the sampler processes did not start (%s); each study's next trial "
                    "tries again", task.exception())


async def _serve(args: argparse.Namespace, client: Any, credentials: Any, metrics: Any,
                 lease: Any, samplers: Any) -> int:
    """The operator and kopf, until kopf stops or leadership is lost."""
    import kopf

    from kubetune.kube import client as clients
    from kubetune.kube.controller import Operator
    from kubetune.kube.handlers import build_registry

    operator = Operator(client, args.namespace or None, metrics=metrics,
                        key_namespace=os.environ.get("POD_NAMESPACE") or credentials.namespace,
                        workloads=args.workload, samplers=samplers)
    registry = build_registry(operator)
    kopf.on.login(id="kubetune-login", registry=registry)(clients.kopf_login(client.login))
    stop = asyncio.Event()
    kopf_task = asyncio.create_task(kopf.operator(
        registry=registry, standalone=True, clusterwide=not args.namespace,
        namespaces=args.namespace, liveness_endpoint=args.liveness, stop_flag=stop,
    ))
    if lease is None:
        await kopf_task
        return 0
    hold = asyncio.create_task(lease.hold())
    done, _ = await asyncio.wait({kopf_task, hold}, return_when=asyncio.FIRST_COMPLETED)
    if hold in done:
        # Leadership lost: stop at once, and let the Deployment restart us as a standby.
        stop.set()
        kopf_task.cancel()
        return 1
    hold.cancel()
    await lease.release()
    return 0


async def _workload_problem(client: Any, workload: Any) -> str | None:
    """Why the operator cannot watch trials of ``workload`` (a core.workloads.Resource): the
    API server does not serve it, or the operator may not list it; None when it can."""
    from kubetune.kube import errors

    try:
        await client.get(f"/apis/{workload.group}/{workload.version}/{workload.resource}",
                         limit="1")
    except errors.NotFound:
        return ("the API server does not serve it: install its controller and CRD (e.g. "
                "JobSet's), or start the operator without this --workload")
    except errors.Forbidden as e:
        return (f"the operator may not list it ({e.message}): grant list, watch, create and "
                "patch on it (the Helm chart's workloads value does)")
    return None


@contextlib.asynccontextmanager
async def standby_liveness(url: str | None) -> AsyncIterator[None]:
    """Answer 200 at ``url`` until the block ends (kopf serves it once this replica leads)."""
    if not url:
        yield
        return
    from aiohttp import web

    parsed = urlparse(url)
    app = web.Application()
    app.router.add_get(parsed.path or "/", lambda request: web.json_response({"standby": True}))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, parsed.hostname, parsed.port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    import kopf

    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
