"""Report a trial's metrics from training code: ``kubetune.sdk.report(step=k, val_loss=...)``.

Inside a trial pod (``POD_NAME`` and ``POD_NAMESPACE`` set by the downward API) each report
patches the pod's own annotations (docs/design.md section 4) with a JSON merge patch:
``kubetune.dev/metrics`` holds the latest report and ``kubetune.dev/curve`` the objective's
learning curve, thinned to at most 200 points by ``kubetune.core.protocol``. Outside a pod each
report is printed as the same JSON on a line of stdout, so a trainer runs unchanged on a laptop.

It is cheap to call every step: reports are coalesced to at most one patch per second (a
background thread sends the latest state), and flushed synchronously on ``final=True`` and at
interpreter exit. Transient API errors (429, 5xx, connection errors) are retried with jittered
exponential backoff, honouring ``Retry-After``. A report never raises into training: a failure
is reported once as a ``RuntimeWarning`` and later reports try again.

Credentials: the kubeconfig at ``KUBECONFIG`` (token, token file or client certificate; CA file
or data), else the in-cluster service account (``KUBERNETES_SERVICE_HOST`` / ``_PORT`` and
``/var/run/secrets/kubernetes.io/serviceaccount``). The objective is ``KUBETUNE_METRIC``
(default ``val_loss``), its direction ``KUBETUNE_DIRECTION`` (default ``minimize``), which
thinning needs to keep the running best, and ``KUBETUNE_KEEP_STEPS`` (comma-separated, e.g.
ASHA's rungs) the steps whose running best thinning must keep exactly.

The HTTP transport is one small interface, :class:`Transport`, so tests use a fake. This module
uses the standard library and PyYAML only; it imports neither kopf nor torch.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import http.client
import json
import os
import random
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from kubetune.core import protocol

__all__ = [
    "ConfigError",
    "KubeTransport",
    "PodRef",
    "Reporter",
    "Transport",
    "TransportError",
    "flush",
    "get_reporter",
    "pod_from_env",
    "report",
    "set_reporter",
    "transport_from_env",
]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class ConfigError(ValueError):
    """No usable Kubernetes credentials; the message names the file or variable and the fix."""


class TransportError(Exception):
    """A patch that failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Transport(Protocol):
    """Writes annotations onto a pod; raises :class:`TransportError` when it cannot."""

    def patch_annotations(self, pod: PodRef, annotations: Mapping[str, str]) -> None: ...


# ---- the HTTPS transport ---------------------------------------------------------------------


class KubeTransport:
    """JSON merge patches of pod annotations over HTTPS, one connection per patch.

    One connection per patch is enough at one patch per second, and it never holds a socket
    that the API server has closed. A token file is re-read on every patch, as bound service
    account tokens are rotated while the pod runs.
    """

    def __init__(self, server: str, context: ssl.SSLContext, *, token: str | None = None,
                 token_file: str | None = None, timeout: float = 5.0) -> None:
        url = urllib.parse.urlsplit(server)
        if url.scheme != "https" or not url.hostname:
            raise ConfigError(
                f"server {server!r}: expected an https:// URL of the Kubernetes API server"
            )
        self.host = url.hostname
        self.port = url.port or 443
        self.prefix = url.path.rstrip("/")
        self.context = context
        self.token = token
        self.token_file = token_file
        self.timeout = timeout

    def _bearer(self) -> str | None:
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise TransportError(f"cannot read token file {self.token_file}: {exc}",
                                     retryable=True) from None
        return self.token

    def patch_annotations(self, pod: PodRef, annotations: Mapping[str, str]) -> None:
        path = (f"{self.prefix}/api/v1/namespaces/{urllib.parse.quote(pod.namespace)}"
                f"/pods/{urllib.parse.quote(pod.name)}")
        body = json.dumps({"metadata": {"annotations": dict(annotations)}}).encode()
        headers = {"Content-Type": "application/merge-patch+json", "Accept": "application/json",
                   "User-Agent": "kubetune-sdk"}
        bearer = self._bearer()
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                                 timeout=self.timeout)
        try:
            connection.request("PATCH", path, body=body, headers=headers)
            response = connection.getresponse()
            detail = response.read(2048).decode(errors="replace")
            status = response.status
            retry_after = _seconds(response.getheader("Retry-After"))
        except (OSError, http.client.HTTPException) as exc:  # ssl.SSLError is an OSError
            raise TransportError(f"PATCH pod {pod}: {type(exc).__name__}: {exc}",
                                 retryable=True) from None
        finally:
            connection.close()
        if status >= 300:
            raise TransportError(
                f"PATCH pod {pod}: HTTP {status}: {_message(detail)}",
                retryable=status in RETRYABLE_STATUS, status=status, retry_after=retry_after,
            )

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str]) -> KubeTransport:
        """The transport for the current context of the kubeconfig at ``path``."""
        import yaml  # only needed with a kubeconfig

        where = Path(path)
        try:
            config = yaml.safe_load(where.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"KUBECONFIG={str(where)!r}: cannot read it ({exc})") from None
        base = where.parent
        name = config.get("current-context")
        context = _named(config, "contexts", name, where).get("context", {})
        cluster = _named(config, "clusters", context.get("cluster"), where).get("cluster", {})
        user = _named(config, "users", context.get("user"), where).get("user", {}) or {}
        if "exec" in user or "auth-provider" in user:
            raise ConfigError(
                f"KUBECONFIG={str(where)!r}: user {context.get('user')!r} uses an exec or "
                "auth-provider plugin, which the SDK does not run; give it a token or tokenFile"
            )
        ssl_context = _ssl_context(cluster, user, base)
        token_file = user.get("tokenFile")
        return cls(
            str(cluster.get("server", "")), ssl_context, token=user.get("token"),
            token_file=str(_resolve(base, token_file)) if token_file else None,
        )

    @classmethod
    def in_cluster(cls, environ: Mapping[str, str],
                   account_dir: Path = SERVICE_ACCOUNT_DIR) -> KubeTransport:
        """The transport for the pod's service account (the in-cluster configuration)."""
        host = environ.get("KUBERNETES_SERVICE_HOST")
        port = environ.get("KUBERNETES_SERVICE_PORT", "443")
        token = account_dir / "token"
        if not host or not token.exists():
            raise ConfigError(
                "no Kubernetes credentials: set KUBECONFIG, or run in a pod with a service "
                f"account token at {token} and KUBERNETES_SERVICE_HOST set"
            )
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        context = ssl.create_default_context(cafile=str(account_dir / "ca.crt"))
        return cls(f"https://{host}:{port}", context, token_file=str(token))


def _seconds(text: str | None) -> float | None:
    try:
        return max(0.0, float(text)) if text else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _message(detail: str) -> str:
    """The API server's Status message, or the start of the body."""
    try:
        message = json.loads(detail).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or detail[:300]).strip()


def _named(config: Mapping[str, Any], section: str, name: Any, where: Path) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    raise ConfigError(
        f"KUBECONFIG={str(where)!r}: no entry {name!r} in {section}; check current-context"
    )


def _resolve(base: Path, path: str) -> Path:
    candidate = Path(os.path.expanduser(path))
    return candidate if candidate.is_absolute() else base / candidate


def _ssl_context(cluster: Mapping[str, Any], user: Mapping[str, Any],
                 base: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        context.load_verify_locations(cadata=pem)
    elif cluster.get("certificate-authority"):
        context.load_verify_locations(cafile=str(_resolve(base, cluster["certificate-authority"])))
    cert, key = user.get("client-certificate"), user.get("client-key")
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    if cert and key:
        context.load_cert_chain(str(_resolve(base, cert)), str(_resolve(base, key)))
    elif cert_data and key_data:
        # ssl loads a client certificate only from files: write them privately, briefly.
        with tempfile.TemporaryDirectory() as folder:
            cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
            cert_path.write_bytes(base64.b64decode(cert_data))
            key_path.touch(mode=0o600)
            key_path.write_bytes(base64.b64decode(key_data))
            context.load_cert_chain(str(cert_path), str(key_path))
    return context


def pod_from_env(environ: Mapping[str, str] | None = None) -> PodRef | None:
    """The pod this process runs in (``POD_NAME``, ``POD_NAMESPACE``), or None outside one."""
    env = os.environ if environ is None else environ
    name = env.get("POD_NAME")
    if not name:
        return None
    return PodRef(env.get("POD_NAMESPACE") or "default", name)


def transport_from_env(environ: Mapping[str, str] | None = None) -> KubeTransport | None:
    """The transport from ``KUBECONFIG`` or the in-cluster configuration; None outside a pod.

    Raises :class:`ConfigError` inside a pod without usable credentials.
    """
    env = os.environ if environ is None else environ
    if pod_from_env(env) is None:
        return None
    kubeconfig = env.get("KUBECONFIG")
    if kubeconfig:
        first = kubeconfig.split(os.pathsep)[0]
        if Path(first).exists():
            return KubeTransport.from_kubeconfig(first)
    try:
        return KubeTransport.in_cluster(env)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"in-cluster configuration: {exc}") from None


# ---- the reporter ----------------------------------------------------------------------------


class Reporter:
    """Turns reports into at most one annotation patch per ``interval`` seconds.

    With ``transport=None`` every report is printed as a JSON line on ``stream`` instead. With
    ``background=False`` (for tests) no thread is started: a report is sent at once when the
    interval has passed since the last patch, otherwise when a later report or ``flush`` comes.
    """

    def __init__(
        self,
        transport: Transport | None,
        pod: PodRef | None,
        *,
        metric: str = "val_loss",
        minimize: bool = True,
        keep_steps: tuple[int, ...] = (),
        interval: float = 1.0,
        attempts: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        background: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        stream: TextIO | None = None,
    ) -> None:
        if transport is not None and pod is None:
            raise ValueError("pod: a Reporter with a transport needs the pod to patch")
        self.transport, self.pod = transport, pod
        self.metric, self.minimize, self.keep_steps = metric, minimize, tuple(keep_steps)
        self.interval, self.attempts = interval, max(1, attempts)
        self.backoff, self.max_backoff = backoff, max_backoff
        self.background = background
        self.clock, self.sleep = clock, sleep
        self.stream = stream
        self.curve: list[protocol.Point] = []
        self.last_step: int | None = None
        self.patches = 0  # patches sent successfully
        self._lock = threading.Lock()  # state
        self._send_lock = threading.Lock()  # one patch at a time
        self._pending: dict[str, str] = {}
        self._version = 0
        self._sent_version = 0
        self._next_send = -float("inf")
        self._warned = False
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._random = random.Random()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Reporter:
        """The reporter for this process: patches its pod, or prints outside one."""
        env = os.environ if environ is None else environ
        metric = env.get("KUBETUNE_METRIC") or "val_loss"
        minimize = (env.get("KUBETUNE_DIRECTION") or "minimize").lower() != "maximize"
        keep_text = env.get("KUBETUNE_KEEP_STEPS") or ""
        keep = tuple(int(s) for s in keep_text.replace(" ", "").split(",") if s.isdigit())
        pod = pod_from_env(env)
        transport: Transport | None = None
        problem = None
        try:
            transport = transport_from_env(env)
        except (ConfigError, OSError, ssl.SSLError, ValueError) as exc:
            problem = exc
        reporter = cls(transport, pod if transport else None, metric=metric,
                       minimize=minimize, keep_steps=keep, **options)
        if problem is not None:
            reporter._warn(f"cannot report to pod {pod}: {problem}; printing reports on "
                           "stdout instead")
        return reporter

    # -- the public calls

    def report(self, step: int | None = None, final: bool = False, **metrics: float) -> None:
        """Record one report and send it (coalesced); never raises."""
        try:
            self._record(step, final, metrics)
        except (ValueError, TypeError, OSError) as exc:
            self._warn(f"report ignored: {exc}")
            return
        if self.transport is None:
            return
        try:
            if final:
                self.flush()
            elif self.background:
                self._start()
                self._wake.set()
            elif self.clock() >= self._next_send:
                self._send_latest()
        except Exception as exc:  # a report must never take training down
            self._warn(f"report failed: {exc!r}")

    def flush(self, timeout: float = 30.0) -> bool:
        """Send the latest state now, waiting at most about ``timeout`` seconds; True if sent."""
        if self.transport is None:
            return True
        try:
            return self._send_latest(deadline=self.clock() + timeout)
        except Exception as exc:  # a report must never take training down
            self._warn(f"flush failed: {exc!r}")
            return False

    def close(self, timeout: float = 30.0) -> bool:
        """Stop the background thread and flush."""
        self._closed.set()
        self._wake.set()
        sent = self.flush(timeout)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        return sent

    # -- internals

    def _record(self, step: int | None, final: bool, metrics: Mapping[str, Any]) -> None:
        with self._lock:
            if step is None:
                # Without a step, a report follows the last one; a final one closes it.
                last = self.last_step
                step = (last or 0) if final else (0 if last is None else last + 1)
            text = protocol.encode_metrics(step, metrics, bool(final))
            value = metrics.get(self.metric)
            if value is not None and (not self.curve or self.curve[-1] != (step, value)):
                self.curve = protocol.append_point(self.curve, step, value,
                                                   minimize=self.minimize,
                                                   keep_steps=self.keep_steps)
            self.last_step = step
            if self.transport is None:
                stream = self.stream or sys.stdout
                print(text, file=stream, flush=True)
                return
            self._pending = {protocol.METRICS_ANNOTATION: text,
                             protocol.CURVE_ANNOTATION: protocol.encode_curve(self.curve)}
            self._version += 1

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kubetune-sdk", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._closed.is_set():
                return
            delay = self._next_send - self.clock()
            if delay > 0 and self._closed.wait(delay):
                return  # close() flushes
            try:
                self._send_latest()
            except Exception as exc:  # keep the thread alive whatever happens
                self._warn(f"report failed: {exc!r}")

    def _send_latest(self, deadline: float | None = None) -> bool:
        with self._send_lock:
            with self._lock:
                if self._version == self._sent_version:
                    return True
                version, body = self._version, dict(self._pending)
            sent = self._patch(body, deadline)
            self._next_send = self.clock() + self.interval
            if sent:
                with self._lock:
                    self._sent_version = max(self._sent_version, version)
                self.patches += 1
            return sent

    def _patch(self, body: Mapping[str, str], deadline: float | None) -> bool:
        transport, pod = self.transport, self.pod
        if transport is None or pod is None:
            return False
        attempt = 0
        while True:
            try:
                transport.patch_annotations(pod, body)
                return True
            except TransportError as exc:
                error: Exception = exc
                retryable, hint = exc.retryable, exc.retry_after
            except Exception as exc:  # a transport's own bug must not reach training either
                error, retryable, hint = exc, False, None
            pause = min(self.max_backoff, self.backoff * 2**attempt)
            pause = pause * (0.5 + 0.5 * self._random.random())
            if hint is not None:
                pause = min(self.max_backoff, max(pause, hint))
            # A flush (a final report, or exit) has a deadline and retries until it, so that a
            # short apiserver outage does not lose a trial's result; otherwise `attempts` bound it.
            out_of_tries = deadline is None and attempt >= self.attempts - 1
            late = deadline is not None and self.clock() + pause > deadline
            if not retryable or out_of_tries or late:
                self._warn(f"could not report metrics to pod {self.pod}: {error}; training "
                           "continues and later reports will try again")
                return False
            self.sleep(pause)
            attempt += 1

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"kubetune.sdk: {message}", RuntimeWarning, stacklevel=3)


# ---- the process-wide reporter ---------------------------------------------------------------

_reporter: Reporter | None = None
_reporter_lock = threading.Lock()


def get_reporter() -> Reporter:
    """The process's reporter, made from the environment on first use; flushed at exit."""
    global _reporter
    with _reporter_lock:
        if _reporter is None:
            _reporter = Reporter.from_env()
            atexit.register(_reporter.close)
        return _reporter


def set_reporter(reporter: Reporter | None) -> Reporter | None:
    """Replace the process's reporter (None: make a new one from the environment on next use).

    Returns the previous one, which is closed. For tests and for trainers that report twice.
    """
    global _reporter
    with _reporter_lock:
        previous, _reporter = _reporter, reporter
    if previous is not None:
        with contextlib.suppress(Exception):
            atexit.unregister(previous.close)
            previous.close()
    if reporter is not None:
        atexit.register(reporter.close)
    return previous


def report(step: int | None = None, final: bool = False, **metrics: float) -> None:
    """Report metrics for ``step``; ``final=True`` for the trial's result. Never raises.

    Inside a trial pod this patches the pod's ``kubetune.dev/metrics`` and ``kubetune.dev/curve``
    annotations (at most once per second; ``final`` and exit flush at once); outside one it
    prints ``{"step": k, "metrics": {...}, "final": false}`` on stdout. Without ``step`` a report
    takes the step after the last one (0 for the first), and a final one the last step.
    """
    try:
        reporter = get_reporter()
    except Exception as exc:  # never raise into training
        warnings.warn(f"kubetune.sdk: cannot report: {exc!r}", RuntimeWarning, stacklevel=2)
        return
    reporter.report(step, final, **metrics)


def flush(timeout: float = 30.0) -> bool:
    """Send the latest report now; True when it reached the API server (or there is none)."""
    return get_reporter().flush(timeout)
