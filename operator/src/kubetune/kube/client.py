"""The operator's asyncio Kubernetes client: JSON requests, and watches as async iterators.

Its credentials come from the one login the operator has (``kubetune.kube.credentials``, the
``kubernetes`` package's configuration loader), which kopf logs in with too (``kopf_login``):
so kopf's own calls on studies and this client's calls (Jobs, pods, events, RBAC, Leases) use
the same identity, renewed when it expires or when the API server answers 401.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from kubetune.kube.credentials import Credentials, Login, ssl_context
from kubetune.kube.errors import ApiError, Unauthorized, api_error

__all__ = ["ApiError", "Client", "kopf_login"]


class Client:
    """JSON calls against the API server of ``login``'s credentials.

    ``login`` is a :class:`Login` (or fixed :class:`Credentials`). A call answered 401 loads the
    credentials again and is made once more; a second 401 is raised as ``Unauthorized``.
    """

    def __init__(self, login: Login | Credentials, *, timeout: float = 30.0):
        self.login = login if isinstance(login, Login) else Login(login)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._session_for: tuple[Any, ...] | None = None

    @property
    def credentials(self) -> Credentials:
        """The credentials in force (loaded now if none are)."""
        return self.login.current()

    async def _current(self) -> Credentials:
        cached = self.login.cached()
        if cached is not None:
            return cached
        # Loading may run an exec plugin or read files: off the event loop.
        return await asyncio.to_thread(self.login.current)

    async def _http(self, credentials: Credentials) -> aiohttp.ClientSession:
        material = credentials.tls_material()
        if self._session is None or self._session.closed or self._session_for != material:
            if self._session is not None:
                await self._session.close()
            self._session = aiohttp.ClientSession(
                base_url=credentials.server,
                connector=aiohttp.TCPConnector(ssl=_ssl(credentials), limit=32),
            )
            self._session_for = material
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def _headers(credentials: Credentials, content_type: str | None,
                 accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept, **credentials.headers()}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self, method: str, path: str, *, body: Any = None,
        params: Mapping[str, str] | None = None, content_type: str = "application/json",
    ) -> dict[str, Any]:
        text = await self._call(method, path, body=body, params=params,
                                content_type=content_type, accept="application/json")
        return dict(json.loads(text)) if text else {}

    async def _call(
        self, method: str, path: str, *, body: Any = None,
        params: Mapping[str, str] | None = None, content_type: str = "application/json",
        accept: str,
    ) -> str:
        data = None if body is None else json.dumps(body)
        for attempt in (1, 2):
            credentials = await self._current()
            http = await self._http(credentials)
            async with http.request(
                method, path, data=data, params=params,
                headers=self._headers(credentials, content_type if body is not None else None,
                                      accept),
                timeout=self._timeout,
            ) as r:
                text = await r.text(errors="replace")
                if r.status < 400:
                    return text
                error = api_error(r.status, text, method=method, path=path)
            if not isinstance(error, Unauthorized) or attempt == 2:
                raise error
            self.login.invalidate(credentials)
        raise AssertionError("unreachable")

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        return await self.request("GET", path, params=params or None)

    async def text(self, path: str, **params: str) -> str:
        """A read whose answer is text, not JSON: a pod's log."""
        return await self._call("GET", path, params=params or None, accept="*/*")

    async def create(self, path: str, body: Any, *, dry_run: bool = False) -> dict[str, Any]:
        params = {"dryRun": "All"} if dry_run else None
        return await self.request("POST", path, body=body, params=params)

    async def merge_patch(self, path: str, body: Any) -> dict[str, Any]:
        return await self.request("PATCH", path, body=body,
                                  content_type="application/merge-patch+json")

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=ops,
                                  content_type="application/json-patch+json")

    async def replace(self, path: str, body: Any) -> dict[str, Any]:
        return await self.request("PUT", path, body=body)

    async def delete(self, path: str) -> dict[str, Any]:
        return await self.request("DELETE", path)

    async def watch(
        self, path: str, resource_version: str, *, timeout_seconds: int = 290, **params: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events of a collection from ``resource_version`` until the server ends it."""
        query = {
            "watch": "true", "resourceVersion": resource_version,
            "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds), **params,
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15,
                                        sock_read=timeout_seconds + 30)
        credentials = await self._current()
        http = await self._http(credentials)
        async with http.get(path, params=query, headers=self._headers(credentials, None),
                            timeout=timeout) as r:
            if r.status >= 400:
                error = api_error(r.status, await r.text(), method="WATCH", path=path)
                if isinstance(error, Unauthorized):
                    # The caller lists and watches again: with credentials loaded anew.
                    self.login.invalidate(credentials)
                raise error
            buffer = b""
            async for chunk in r.content.iter_any():
                # Split a chunk's lines at once: one split per line would copy the rest of a
                # large chunk each time (a burst of events after a busy second).
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)


def _ssl(credentials: Credentials) -> ssl.SSLContext | bool:
    if credentials.server.startswith("http://"):
        return False
    return ssl_context(credentials)


def kopf_login(login: Login) -> Any:
    """A kopf ``on.login`` handler that logs kopf in with ``login``'s credentials.

    kopf calls it at start and again when its credentials expire or are refused: each call
    loads them anew. kopf is told only a real expiry (an exec plugin's), never the minute after
    which a token file is read again: each expiry makes kopf drop its session and its watches.
    It hands kopf a ready aiohttp session (``kopf.AiohttpSession``), so that kopf, too, never
    writes a certificate or key to a file.
    """
    import kopf

    calls = 0

    async def handler(**_: Any) -> kopf.AiohttpSession:
        nonlocal calls
        calls += 1
        previous = login.cached()
        if calls > 1 and previous is not None:
            # kopf logs in again only when its credentials expired or were refused (401).
            login.invalidate(previous)
        current = await asyncio.to_thread(login.current)
        expiration = None
        if current.expires is not None:
            expiration = datetime.datetime.fromtimestamp(current.expires, datetime.UTC)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=_ssl(current), limit=0),
            headers=current.headers(),
        )
        return kopf.AiohttpSession(server=current.server, aiohttp_session=session,
                                   default_namespace=current.namespace,
                                   expiration=expiration)

    return handler
