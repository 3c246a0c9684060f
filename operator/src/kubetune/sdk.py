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

Credentials come from ``kubetune.kube.credentials``, the ``kubernetes`` package's configuration
loader: the kubeconfig at ``KUBECONFIG`` (any kind of user, exec plugins included), else the
in-cluster service account; they are loaded on the SDK's own thread at the first report (the
package's import takes longer than the SDK's), and again when they expire or are refused. The
objective is ``KUBETUNE_METRIC``
(default ``val_loss``), its direction ``KUBETUNE_DIRECTION`` (default ``minimize``), which
thinning needs to keep the running best, and ``KUBETUNE_KEEP_STEPS`` (comma-separated, e.g.
ASHA's rungs) the steps whose running best thinning must keep exactly.

A report that could not be delivered by the time the process exits (after retrying until the
flush deadline) ends the process with exit status 1 and a line on stderr: the trial is then
Failed, rather than Succeeded with the older report that its pod still carries.

The HTTP transport is one small interface, :class:`Transport`, so tests use a fake. The PATCH
itself is a few lines of ``http.client`` (benchmarks/bench_sdk.py measures why); this module
imports neither kopf nor torch.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import random
import ssl
import sys
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from kubetune.core import protocol
from kubetune.kube import credentials as logins
from kubetune.kube import errors

__all__ = [
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

# Worth another try: throttled or failing servers, and refused credentials (loaded anew).
RETRYABLE = (*errors.RETRYABLE, errors.Unauthorized)


class TransportError(Exception):
    """A patch that failed; ``retryable`` says whether trying again may help, ``error`` is the
    API's answer when there was one."""

    def __init__(self, message: str, *, retryable: bool, error: errors.ApiError | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.error = error
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
    that the API server has closed. Credentials come from ``login`` (loaded at the first patch,
    again when they expire, and after a 401).
    """

    def __init__(self, login: logins.Login | logins.Credentials, *,
                 timeout: float = 5.0) -> None:
        self.login = login if isinstance(login, logins.Login) else logins.Login(login)
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        self._context_for: tuple[Any, ...] | None = None

    def _credentials(self) -> logins.Credentials:
        try:
            return self.login.current()
        except logins.CredentialsError as exc:
            raise TransportError(f"no usable credentials: {exc}", retryable=False) from None

    def _ssl(self, credentials: logins.Credentials) -> ssl.SSLContext:
        if self._context is None or self._context_for != credentials.tls_material():
            self._context = logins.ssl_context(credentials)
            self._context_for = credentials.tls_material()
        return self._context

    def patch_annotations(self, pod: PodRef, annotations: Mapping[str, str]) -> None:
        credentials = self._credentials()
        url = urllib.parse.urlsplit(credentials.server)
        if url.scheme != "https" or not url.hostname:
            raise TransportError(
                f"server {credentials.server!r} of {credentials.where()}: expected an https:// "
                "URL of the Kubernetes API server", retryable=False)
        path = (f"{url.path.rstrip('/')}/api/v1/namespaces/{urllib.parse.quote(pod.namespace)}"
                f"/pods/{urllib.parse.quote(pod.name)}")
        body = json.dumps({"metadata": {"annotations": dict(annotations)}}).encode()
        headers = {"Content-Type": "application/merge-patch+json", "Accept": "application/json",
                   "User-Agent": "kubetune-sdk", **credentials.headers()}
        try:
            context = self._ssl(credentials)
        except (ssl.SSLError, ValueError) as exc:
            raise TransportError(f"the TLS settings of {credentials.where()}: {exc}",
                                 retryable=False) from None
        connection = http.client.HTTPSConnection(url.hostname, url.port or 443, context=context,
                                                 timeout=self.timeout)
        try:
            connection.request("PATCH", path, body=body, headers=headers)
            response = connection.getresponse()
            detail = response.read(2048)
            status = response.status
            retry_after = _seconds(response.getheader("Retry-After"))
        except (OSError, http.client.HTTPException) as exc:  # ssl.SSLError is an OSError
            raise TransportError(f"PATCH pod {pod}: {type(exc).__name__}: {exc}",
                                 retryable=True) from None
        finally:
            connection.close()
        if status >= 300:
            error = errors.api_error(status, detail, method="PATCH", path=path)
            if isinstance(error, errors.Unauthorized):
                self.login.invalidate(credentials)
            raise TransportError(f"PATCH pod {pod}: {error.status} {error.message}",
                                 retryable=isinstance(error, RETRYABLE), error=error,
                                 retry_after=retry_after)


def _seconds(text: str | None) -> float | None:
    try:
        return max(0.0, float(text)) if text else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _other_worker(env: Mapping[str, str]) -> bool:
    """Whether this process is a worker other than 0 of a trial of several (trial.workers)."""
    if "KUBETUNE_TRIAL" not in env:
        return False
    try:
        return int(env.get("WORLD_SIZE") or 1) > 1 and int(env.get("RANK") or 0) != 0
    except ValueError:
        return False


def pod_from_env(environ: Mapping[str, str] | None = None) -> PodRef | None:
    """The pod this process runs in (``POD_NAME``, ``POD_NAMESPACE``), or None outside one."""
    env = os.environ if environ is None else environ
    name = env.get("POD_NAME")
    if not name:
        return None
    return PodRef(env.get("POD_NAMESPACE") or "default", name)


def transport_from_env(environ: Mapping[str, str] | None = None, *,
                       account_dir: Path = logins.SERVICE_ACCOUNT_DIR) -> KubeTransport | None:
    """The transport with the credentials of ``KUBECONFIG`` or the in-cluster service account;
    None outside a pod. Nothing is loaded until the first patch."""
    env = dict(os.environ if environ is None else environ)
    if pod_from_env(env) is None:
        return None
    return KubeTransport(logins.Login(lambda: logins.load(environ=env, account_dir=account_dir)))


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
        self._final_version = -1  # the version of the latest final report
        self.last_error: str | None = None  # why the latest patch failed; None once one lands
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
        # Worker 0 reports a trial of several workers; the others print their reports.
        transport = None if _other_worker(env) else transport_from_env(env)
        return cls(transport, pod_from_env(env) if transport else None, metric=metric,
                   minimize=minimize, keep_steps=keep, **options)

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
            if final:
                self._final_version = self._version

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
            sent = self._patch(body, deadline, final=version == self._final_version)
            self._next_send = self.clock() + self.interval
            if sent:
                with self._lock:
                    self._sent_version = max(self._sent_version, version)
                self.patches += 1
            return sent

    def undelivered(self) -> bool:
        """Whether the latest report has not reached the pod."""
        with self._lock:
            return self.transport is not None and self._version != self._sent_version

    def _patch(self, body: Mapping[str, str], deadline: float | None, *,
               final: bool = False) -> bool:
        transport, pod = self.transport, self.pod
        if transport is None or pod is None:
            return False
        attempt = 0
        while True:
            try:
                transport.patch_annotations(pod, body)
                self.last_error = None
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
                self.last_error = str(error)
                if final:
                    # Never folded into an earlier warning: without it the pod keeps an older
                    # report, and the trial would end with that one's value.
                    self._warn(f"the final report could not be delivered to pod {self.pod}: "
                               f"{error}; it is tried again at exit, and the process exits "
                               "with status 1 if it still fails", always=True)
                else:
                    self._warn(f"could not report metrics to pod {self.pod}: {error}; training "
                               "continues and later reports will try again")
                return False
            self.sleep(pause)
            attempt += 1

    def _warn(self, message: str, *, always: bool = False) -> None:
        if always or not self._warned:
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
            atexit.register(_close_at_exit, _reporter)
        return _reporter


def _close_at_exit(reporter: Reporter, end: Callable[[int], Any] = os._exit) -> None:
    """Flush at interpreter exit; a report still undelivered ends the process with status 1,
    so that the trial fails instead of ending with the older report its pod still carries."""
    reporter.close()
    if not reporter.undelivered():
        return
    step = reporter.last_step
    sys.stdout.flush()
    print(f"kubetune.sdk: the last report (step {step}) could not be delivered to pod "
          f"{reporter.pod}: {reporter.last_error}; exiting with status 1 so that the trial "
          "does not end with an older report's value", file=sys.stderr, flush=True)
    end(1)


def set_reporter(reporter: Reporter | None) -> Reporter | None:
    """Replace the process's reporter (None: make a new one from the environment on next use).

    Returns the previous one, which is closed. For tests and for trainers that report twice.
    """
    global _reporter
    with _reporter_lock:
        previous, _reporter = _reporter, reporter
    if previous is not None:
        with contextlib.suppress(Exception):
            atexit.unregister(_close_at_exit)
            previous.close()
    if reporter is not None:
        atexit.register(_close_at_exit, reporter)
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
