"""kube.client.Client against a loopback HTTP server: typed errors, and credentials loaded
again after a 401 (an expired exec-plugin token), once."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from kubetune.kube import client as clients
from kubetune.kube import errors
from kubetune.kube.credentials import Credentials, Login


@pytest.fixture
def served() -> dict[str, object]:
    return {"tokens": [], "accept": "Bearer fresh"}


async def _server(state: dict[str, object]) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "")
        state["tokens"].append(token)  # type: ignore[union-attr]
        if request.path == "/missing":
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound",
                                      "message": "jobs.batch \"x\" not found"}, status=404)
        if token != state["accept"]:
            return web.json_response({"kind": "Status", "code": 401, "reason": "Unauthorized",
                                      "message": "Unauthorized"}, status=401)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_a_401_loads_the_credentials_again_and_retries_once(served: dict[str, object]) -> None:
    async def scenario() -> None:
        runner, url = await _server(served)
        issued = iter(["Bearer stale", "Bearer fresh", "Bearer also-stale"])
        client = clients.Client(Login(lambda: Credentials(server=url,
                                                          authorization=next(issued))))
        try:
            assert await client.get("/api/v1/namespaces/x/pods/p") == {"ok": True}
            assert served["tokens"] == ["Bearer stale", "Bearer fresh"]
            served["accept"] = "Bearer newer"  # refused again after a reload: raised
            with pytest.raises(errors.Unauthorized):
                await client.get("/api/v1/namespaces/x/pods/p")
            assert served["tokens"][2:] == ["Bearer fresh", "Bearer also-stale"]
        finally:
            await client.close()
            await runner.cleanup()

    _run(scenario())


def test_errors_are_typed(served: dict[str, object]) -> None:
    async def scenario() -> None:
        runner, url = await _server(served)
        client = clients.Client(Credentials(server=url, authorization="Bearer fresh"))
        try:
            with pytest.raises(errors.NotFound, match="not found"):
                await client.get("/missing")
        finally:
            await client.close()
            await runner.cleanup()

    _run(scenario())


def test_kopf_logs_in_with_the_same_login_and_anew_each_time_it_asks() -> None:
    loads: list[Credentials] = []

    def loader() -> Credentials:
        loads.append(Credentials(server="https://127.0.0.1:6443", namespace="ops",
                                 authorization=f"Bearer t{len(loads)}",
                                 reread_at=time.time() + 60))
        return loads[-1]

    async def scenario() -> None:
        handler = clients.kopf_login(Login(loader))
        first = await handler()
        second = await handler()  # kopf asks again only after an expiry or a 401
        try:
            assert len(loads) == 2
            assert first.server == "https://127.0.0.1:6443"
            assert first.default_namespace == "ops"
            assert first.aiohttp_session.headers["Authorization"] == "Bearer t0"
            assert second.aiohttp_session.headers["Authorization"] == "Bearer t1"
            # A token file's re-read is not an expiry: kopf would drop its watches for it.
            assert first.expiration is None
        finally:
            await first.aiohttp_session.close()
            await second.aiohttp_session.close()

    _run(scenario())
