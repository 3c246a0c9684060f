"""kube.client.Client against a loopback HTTP server: typed errors, and credentials loaded
again after a 401 (an expired exec-plugin token), once."""

from __future__ import annotations

import asyncio

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
