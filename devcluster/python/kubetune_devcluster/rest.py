"""A small synchronous Kubernetes REST client for the node agent (client certificates, JSON,
watches as line streams). It talks to the one apiserver URL it is given, on loopback, with the
node's certificate from devcluster's own PKI; its errors are the typed ``kubetune.kube.errors``.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
from kubetune.kube.errors import ApiError, api_error

__all__ = ["ApiError", "Rest"]


class Rest:
    """JSON calls against one apiserver, authenticated by a client certificate."""

    def __init__(self, server: str, ca: str, cert: str, key: str, timeout: float = 30.0):
        self.server = server.rstrip("/")
        self._client = httpx.Client(
            base_url=self.server, verify=_ssl_context(ca, cert, key), timeout=timeout,
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self, method: str, path: str, *, body: Any = None, params: dict | None = None,
        content_type: str = "application/json",
    ) -> dict:
        content = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        r = self._client.request(method, path, content=content, params=params, headers=headers)
        if r.status_code >= 400:
            raise api_error(r.status_code, r.text, method=method, path=path)
        return r.json() if r.content else {}

    def get(self, path: str, **params: Any) -> dict:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any) -> dict:
        return self.request("POST", path, body=body)

    def merge_patch(self, path: str, body: Any) -> dict:
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def delete(self, path: str, body: Any = None) -> dict:
        return self.request("DELETE", path, body=body)

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 300,
              **params: Any) -> Iterator[dict]:
        """Yield watch events until the server closes the stream."""
        query = {
            "watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds), **params,
        }
        timeout = httpx.Timeout(10.0, read=timeout_seconds + 30)
        with self._client.stream("GET", path, params=query, timeout=timeout) as r:
            if r.status_code >= 400:
                r.read()
                raise api_error(r.status_code, r.text, method="WATCH", path=path)
            for line in r.iter_lines():
                if line.strip():
                    yield json.loads(line)


def _ssl_context(ca: str, cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    return ctx
