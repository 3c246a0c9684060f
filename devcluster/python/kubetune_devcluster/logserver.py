"""The kubelet's log endpoint, served by the node agent on loopback, so that ``kubectl logs``
works: the apiserver proxies ``/containerLogs/<namespace>/<pod>/<container>`` here.

Only clients holding a certificate from devcluster's CA (the apiserver's kubelet client) are
served.
"""

from __future__ import annotations

import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

if TYPE_CHECKING:
    from kubetune_devcluster.agent import NodeAgent
    from kubetune_devcluster.cluster import ClusterState

__all__ = ["LogServer"]


class LogServer:
    def __init__(self, agent: NodeAgent, state: ClusterState):
        self.agent = agent
        handler = type("Handler", (_Handler,), {"agent": agent})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", agent.port), handler)
        self.httpd.daemon_threads = True
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(agent.pki.ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(str(agent.pki.cert(f"node-{agent.name}-serving")),
                            str(agent.pki.key(f"node-{agent.name}-serving")))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)

    def start(self) -> None:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()


class _Handler(BaseHTTPRequestHandler):
    agent: NodeAgent
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:
        return

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._send(404, b"not found\n")
            return
        _, namespace, pod, container = parts
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = self.agent.log_path(namespace, pod, container)
        if path is None:
            self._send(404, f"no logs for {namespace}/{pod}/{container} on this node\n".encode())
            return
        data = path.read_bytes()
        if "tailLines" in query:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(query["tailLines"]):]) if int(query["tailLines"]) else b""
        if "limitBytes" in query:
            data = data[: int(query["limitBytes"])]
        if query.get("follow") not in ("true", "1"):
            self._send(200, data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        offset = path.stat().st_size
        self._chunk(data)
        while self.agent.container_running(namespace, pod, container):
            time.sleep(0.2)
            try:
                with path.open("rb") as f:
                    f.seek(offset)
                    more = f.read()
            except OSError:
                break
            offset += len(more)
            if more and not self._chunk(more):
                return
        self._chunk(b"")

    def _chunk(self, data: bytes) -> bool:
        try:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
            return True
        except OSError:
            return False

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
