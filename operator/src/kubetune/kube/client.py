"""A small asyncio Kubernetes client for the operator: credentials from a kubeconfig or the
in-cluster service account, JSON requests, and watches as async iterators.

kopf keeps its own client for studies; the operator's own calls (Jobs, pods, events, RBAC,
Leases) go through this one, so both share one credentials loader (``load_credentials``).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from kubetune.kube.errors import ApiError, api_error

__all__ = ["ApiError", "Client", "Credentials", "load_credentials"]

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    insecure: bool = False
    namespace: str = "default"

    def bearer(self) -> str | None:
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return self.token

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def _materialise(data: str | None, suffix: str) -> str | None:
    """Write base64 ``*-data`` from a kubeconfig to a private temp file for the ssl module."""
    if not data:
        return None
    fd, path = tempfile.mkstemp(prefix="kubetune-", suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(data))
    return path


def _from_kubeconfig(path: Path) -> Credentials:
    config = yaml.safe_load(path.read_text())
    context_name = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    context = contexts.get(context_name) or next(iter(contexts.values()))
    cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
    user = {u["name"]: u.get("user") or {} for u in config.get("users") or []}.get(
        context.get("user"), {})
    base = path.parent

    def rel(p: str | None) -> str | None:
        return None if p is None else str((base / p).resolve())

    return Credentials(
        server=cluster["server"],
        ca_file=rel(cluster.get("certificate-authority"))
        or _materialise(cluster.get("certificate-authority-data"), ".crt"),
        cert_file=rel(user.get("client-certificate"))
        or _materialise(user.get("client-certificate-data"), ".crt"),
        key_file=rel(user.get("client-key")) or _materialise(user.get("client-key-data"), ".key"),
        token=user.get("token"),
        token_file=rel(user.get("tokenFile")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        namespace=context.get("namespace") or "default",
    )


def load_credentials() -> Credentials:
    """KUBECONFIG (first file) if set, else the in-cluster service account, else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return _from_kubeconfig(Path(env.split(os.pathsep)[0]))
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if host and port and (SA_DIR / "token").exists():
        host = f"[{host}]" if ":" in host else host
        return Credentials(
            server=f"https://{host}:{port}", ca_file=str(SA_DIR / "ca.crt"),
            token_file=str(SA_DIR / "token"),
            namespace=(SA_DIR / "namespace").read_text().strip(),
        )
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return _from_kubeconfig(default)
    raise RuntimeError("no Kubernetes credentials: set KUBECONFIG or run in a cluster")


class Client:
    """JSON calls against the apiserver of ``credentials``."""

    def __init__(self, credentials: Credentials, *, timeout: float = 30.0):
        self.credentials = credentials
        self._ssl = credentials.ssl_context()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self.credentials.server,
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=32),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.credentials.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self, method: str, path: str, *, body: Any = None,
        params: Mapping[str, str] | None = None, content_type: str = "application/json",
    ) -> dict[str, Any]:
        http = await self._http()
        data = None if body is None else json.dumps(body)
        async with http.request(
            method, path, data=data, params=params,
            headers=self._headers(content_type if body is not None else None),
            timeout=self._timeout,
        ) as r:
            text = await r.text()
            if r.status >= 400:
                raise api_error(r.status, text, method=method, path=path)
            return json.loads(text) if text else {}

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        return await self.request("GET", path, params=params or None)

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
        http = await self._http()
        query = {
            "watch": "true", "resourceVersion": resource_version,
            "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds), **params,
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15,
                                        sock_read=timeout_seconds + 30)
        async with http.get(path, params=query, headers=self._headers(None),
                            timeout=timeout) as r:
            if r.status >= 400:
                raise api_error(r.status, await r.text(), method="WATCH", path=path)
            buffer = b""
            async for chunk in r.content.iter_any():
                # Split a chunk's lines at once: one split per line would copy the rest of a
                # large chunk each time (a burst of events after a busy second).
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
