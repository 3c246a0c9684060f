"""kubetune.sdk: reports to annotations, coalesced, thinned, retried, never raising into training.

Most tests drive a Reporter without its thread (``background=False``) and with a fake clock;
a few use the thread with short intervals; the HTTPS transport is tested against a local TLS
server with a self-signed certificate.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import json
import math
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from kubetune import sdk
from kubetune.core import protocol
from kubetune.kube import credentials as logins
from kubetune.kube import errors

POD = sdk.PodRef("ns", "trial-0")


class FakeTransport:
    """Records patches; raises the scripted errors first, one per call."""

    def __init__(self, errors: list[Exception] | None = None) -> None:
        self.errors = list(errors or [])
        self.calls: list[tuple[sdk.PodRef, dict[str, str]]] = []
        self.patches: list[dict[str, str]] = []

    def patch_annotations(self, pod: sdk.PodRef, annotations: Mapping[str, str]) -> None:
        self.calls.append((pod, dict(annotations)))
        if self.errors:
            raise self.errors.pop(0)
        self.patches.append(dict(annotations))

    def last(self) -> tuple[protocol.MetricsReport, list[protocol.Point]]:
        body = self.patches[-1]
        return (protocol.parse_metrics(body[protocol.METRICS_ANNOTATION]),
                protocol.parse_curve(body[protocol.CURVE_ANNOTATION]))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def reporter(transport: FakeTransport, clock: FakeClock, **options: object) -> sdk.Reporter:
    return sdk.Reporter(transport, POD, background=False, clock=clock, sleep=clock.sleep,
                        **options)  # type: ignore[arg-type]


def retryable(status: int = 503, retry_after: float | None = None) -> sdk.TransportError:
    return sdk.TransportError(f"HTTP {status}", retryable=True, retry_after=retry_after)


# ---- what is written ----------------------------------------------------------------------------


def test_a_report_patches_metrics_and_curve_annotations() -> None:
    transport, clock = FakeTransport(), FakeClock()
    reporter(transport, clock).report(step=1, val_loss=0.5, val_accuracy=0.9)
    assert [pod for pod, _ in transport.calls] == [POD]
    metrics, curve = transport.last()
    assert metrics == protocol.MetricsReport(1, {"val_loss": 0.5, "val_accuracy": 0.9}, False)
    assert curve == [(1, 0.5)]


def test_the_curve_follows_the_objective_named_by_metric() -> None:
    transport, clock = FakeTransport(), FakeClock()
    r = reporter(transport, clock, metric="val_accuracy", minimize=False)
    for step, acc in enumerate([0.5, 0.7, 0.6], start=1):
        clock.now += 2
        r.report(step=step, val_loss=1.0, val_accuracy=acc)
    assert transport.last()[1] == [(1, 0.5), (2, 0.7), (3, 0.6)]


def test_a_report_without_step_follows_the_last_and_a_final_one_closes_it() -> None:
    stream = io.StringIO()
    r = sdk.Reporter(None, None, stream=stream)
    r.report(loss=3.0)
    r.report(loss=2.0)
    r.report(step=7, loss=1.0)
    r.report(final=True, loss=1.0)
    steps = [(d["step"], d["final"]) for d in map(json.loads, stream.getvalue().splitlines())]
    assert steps == [(0, False), (1, False), (7, False), (7, True)]


def test_the_curve_stays_within_200_points_and_keeps_the_running_best() -> None:
    transport, clock = FakeTransport(), FakeClock()
    r = reporter(transport, clock)
    values = [1.0 / (1 + k) + 0.05 * math.sin(k) for k in range(1000)]
    for step, value in enumerate(values):
        clock.now += 1.5  # every report is due, so every curve is written
        r.report(step=step, val_loss=value)
    assert len(transport.patches) == 1000
    assert max(len(json.loads(p[protocol.CURVE_ANNOTATION])) for p in transport.patches) <= 200
    metrics, curve = transport.last()
    assert metrics.step == 999
    assert curve[0] == (0, values[0])
    assert curve[-1] == (999, values[-1])
    assert min(v for _, v in curve) == min(values)


def test_a_nan_objective_is_written_to_metrics_and_left_out_of_the_curve() -> None:
    transport, clock = FakeTransport(), FakeClock()
    r = reporter(transport, clock)
    r.report(step=1, val_loss=0.5)
    r.report(step=2, final=True, val_loss=math.nan)
    body = transport.patches[-1]
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_metrics(body[protocol.METRICS_ANNOTATION], "val_loss")
    assert caught.value.reason == protocol.METRIC_NOT_FINITE
    assert protocol.parse_curve(body[protocol.CURVE_ANNOTATION]) == [(1, 0.5)]


# ---- coalescing and flushing ------------------------------------------------------------------


def test_reports_are_coalesced_to_one_patch_per_interval_with_the_latest_state() -> None:
    transport, clock = FakeTransport(), FakeClock()
    r = reporter(transport, clock, interval=1.0)
    for step in range(100):
        r.report(step=step, val_loss=1.0 / (step + 1))
        clock.now += 1 / 64  # exact in binary: step 64 comes exactly 1 s after step 0
    assert [protocol.parse_metrics(p[protocol.METRICS_ANNOTATION]).step
            for p in transport.patches] == [0, 64]
    assert r.flush() is True
    assert transport.last()[0].step == 99
    assert r.flush() is True
    assert len(transport.patches) == 3  # nothing newer to send
    r.report(step=100, val_loss=0.001)
    assert len(transport.patches) == 3  # within the interval of the flush: held back
    assert r.flush() is True
    metrics, curve = transport.last()
    assert metrics.step == 100
    assert len(curve) == 101


def test_a_final_report_is_sent_at_once_despite_the_interval() -> None:
    transport, clock = FakeTransport(), FakeClock()
    r = reporter(transport, clock, interval=60.0)
    r.report(step=1, val_loss=0.9)
    r.report(step=2, val_loss=0.8)
    r.report(step=3, final=True, val_loss=0.7)
    metrics, curve = transport.last()
    assert (metrics.step, metrics.final) == (3, True)
    assert curve == [(1, 0.9), (2, 0.8), (3, 0.7)]
    assert len(transport.patches) == 2


def test_the_background_thread_sends_a_held_report_without_another_call() -> None:
    transport = FakeTransport()
    r = sdk.Reporter(transport, POD, interval=0.05)
    try:
        r.report(step=1, val_loss=0.9)
        r.report(step=2, val_loss=0.8)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if transport.patches and transport.last()[0].step == 2:
                break
            time.sleep(0.01)
        assert transport.last()[0].step == 2
        assert len(transport.patches) <= 2
    finally:
        r.close()


def test_the_background_thread_holds_reports_within_the_interval_and_final_flushes() -> None:
    transport = FakeTransport()
    r = sdk.Reporter(transport, POD, interval=60.0)
    try:
        for step in range(1, 50):
            r.report(step=step, val_loss=1.0 / step)
        time.sleep(0.1)
        assert len(transport.patches) == 1  # the first; the rest wait for the interval
        r.report(step=50, final=True, val_loss=0.01)
        assert (transport.last()[0].step, transport.last()[0].final) == (50, True)
        assert len(transport.last()[1]) == 50
    finally:
        r.close()


def test_reports_are_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    out = tmp_path / "patches.jsonl"
    script = f"""
import json
import time
from kubetune import sdk

class FileTransport:
    def patch_annotations(self, pod, annotations):
        with open({str(out)!r}, "a") as f:
            f.write(json.dumps(annotations) + "\\n")

sdk.set_reporter(sdk.Reporter(FileTransport(), sdk.PodRef("ns", "p"), interval=60.0))
sdk.report(step=1, val_loss=1.0)
while sdk.get_reporter().patches == 0:  # the thread sends the first report at once
    time.sleep(0.01)
sdk.report(step=2, val_loss=0.5)
sdk.report(step=3, val_loss=0.25)
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    patches = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(patches) == 2  # the first report, then the latest at exit
    last = protocol.parse_metrics(patches[-1][protocol.METRICS_ANNOTATION])
    assert last.step == 3


# ---- retries and failures -----------------------------------------------------------------------


def test_transient_errors_are_retried_with_growing_backoff() -> None:
    transport = FakeTransport([retryable(503), retryable(500), retryable(502)])
    clock = FakeClock()
    r = reporter(transport, clock, backoff=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a success after retries warns nothing
        r.report(step=1, val_loss=0.5)
    assert len(transport.calls) == 4
    assert transport.last()[0].step == 1
    assert len(clock.sleeps) == 3
    # Jittered between half and all of 0.25 * 2**attempt.
    for attempt, pause in enumerate(clock.sleeps):
        assert 0.125 * 2**attempt <= pause <= 0.25 * 2**attempt


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    transport = FakeTransport([retryable(429, retry_after=3.0), retryable(429, retry_after=99)])
    clock = FakeClock()
    reporter(transport, clock, max_backoff=8.0).report(step=1, val_loss=0.5)
    assert clock.sleeps[0] >= 3.0
    assert clock.sleeps[1] == 8.0
    assert len(transport.patches) == 1


def test_a_permanent_error_is_not_retried_and_warns_once() -> None:
    forbidden = sdk.TransportError("HTTP 403: forbidden", retryable=False)
    transport = FakeTransport([forbidden, forbidden])
    clock = FakeClock()
    r = reporter(transport, clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r.report(step=1, val_loss=0.5)
        clock.now += 2
        r.report(step=2, val_loss=0.4)
    assert len(transport.calls) == 2  # one try per report
    assert clock.sleeps == []
    assert len(caught) == 1
    assert "403" in str(caught[0].message)
    assert caught[0].category is RuntimeWarning
    clock.now += 2
    r.report(step=3, val_loss=0.3)  # the API is back: the latest state goes through
    metrics, curve = transport.last()
    assert metrics.step == 3
    assert curve == [(1, 0.5), (2, 0.4), (3, 0.3)]


def test_exhausted_retries_and_broken_transports_never_raise_into_training() -> None:
    class Broken:
        def patch_annotations(self, pod: sdk.PodRef, annotations: Mapping[str, str]) -> None:
            raise RuntimeError("a bug in the transport")

    clock = FakeClock()
    transport = FakeTransport([retryable() for _ in range(1000)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = reporter(transport, clock, attempts=3)
        r.report(step=1, val_loss=0.5)
        assert len(transport.calls) == 3
        assert r.flush() is False
        b = sdk.Reporter(Broken(), POD, background=False, clock=clock, sleep=clock.sleep)
        b.report(step=1, val_loss=0.5)
        b.report(step=2, final=True, val_loss=0.4)
    # Once per reporter, and the final report's failure on its own.
    assert len(caught) == 3
    assert "final report could not be delivered" in str(caught[2].message)


def test_a_flush_outlasts_the_attempt_limit_until_its_deadline() -> None:
    # A final report during a short apiserver outage still lands.
    clock = FakeClock()
    transport = FakeTransport([retryable() for _ in range(6)])
    r = reporter(transport, clock, attempts=3, backoff=0.5, interval=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r.report(step=1, val_loss=0.5)
        assert r.flush(timeout=30.0) is True
    assert len(transport.calls) == 7


def test_a_flush_gives_up_retrying_at_its_deadline() -> None:
    clock = FakeClock()
    transport = FakeTransport([retryable() for _ in range(100)])
    r = reporter(transport, clock, attempts=10, backoff=1.0, interval=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r.report(step=1, val_loss=0.5)
        calls = len(transport.calls)
        started = clock.now
        assert r.flush(timeout=2.0) is False
    assert clock.now - started <= 2.0
    assert len(transport.calls) - calls <= 3


def test_an_unsendable_report_warns_and_is_dropped() -> None:
    transport, clock = FakeTransport(), FakeClock()
    r = reporter(transport, clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r.report(step=1, val_loss="low")  # type: ignore[arg-type]
        r.report(step=-1, val_loss=0.3)
        r.report(step=1)
    assert transport.calls == []
    assert len(caught) == 1
    assert "val_loss" in str(caught[0].message)


# ---- stdout mode and the environment ------------------------------------------------------------


def test_outside_a_pod_reports_print_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    previous = sdk.set_reporter(sdk.Reporter.from_env(environ={}))
    try:
        sdk.report(step=1, val_loss=0.25)
        sdk.report(step=2, final=True, val_loss=0.125)
        assert sdk.flush() is True
    finally:
        sdk.set_reporter(previous)
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 1, "metrics": {"val_loss": 0.25}, "final": False},
        {"step": 2, "metrics": {"val_loss": 0.125}, "final": True},
    ]


def test_a_pod_without_credentials_warns_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    env = {"POD_NAME": "p", "POD_NAMESPACE": "ns", "KUBECONFIG": str(missing)}
    r = sdk.Reporter.from_env(environ=env, background=False)
    with pytest.warns(RuntimeWarning, match=f"{missing}: no kubeconfig there"):
        r.report(step=1, val_loss=0.5)
    assert r.undelivered()


def test_a_final_report_that_fails_always_warns_even_after_an_earlier_warning() -> None:
    forbidden = sdk.TransportError("HTTP 403: forbidden", retryable=False)
    transport, clock = FakeTransport([forbidden, forbidden]), FakeClock()
    r = reporter(transport, clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r.report(step=1, val_loss=0.5)
        clock.now += 2
        r.report(step=2, final=True, val_loss=0.4)
    assert len(caught) == 2
    assert "final report could not be delivered" in str(caught[1].message)
    assert r.undelivered()


def test_an_undelivered_last_report_ends_the_process_with_status_1(
        capsys: pytest.CaptureFixture[str]) -> None:
    forbidden = sdk.TransportError("HTTP 403: forbidden", retryable=False)
    transport, clock = FakeTransport([forbidden for _ in range(5)]), FakeClock()
    r = reporter(transport, clock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r.report(step=1, val_loss=0.5)  # lost too: the pod carries no report at all
        clock.now += 2
        r.report(step=2, final=True, val_loss=0.4)
    exits: list[int] = []
    with pytest.warns(RuntimeWarning, match="final report could not be delivered"):
        sdk._close_at_exit(r, exits.append)  # the flush at exit tries once more
    assert exits == [1]
    err = capsys.readouterr().err
    assert "the last report (step 2) could not be delivered to pod ns/trial-0" in err
    assert "403" in err


def test_a_stale_report_never_stands_in_for_an_undelivered_final_one() -> None:
    # Step 1 lands, the final step 2 does not: exiting 0 would let step 1 stand as the result.
    outage = [retryable() for _ in range(1000)]
    transport, clock = FakeTransport(), FakeClock()
    r = reporter(transport, clock, attempts=2, backoff=0.5)
    r.report(step=1, val_loss=0.5)
    assert transport.last()[0].step == 1
    transport.errors = outage
    clock.now += 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r.report(step=2, final=True, val_loss=0.4)
    exits: list[int] = []
    with pytest.warns(RuntimeWarning, match="final report could not be delivered"):
        sdk._close_at_exit(r, exits.append)
    assert exits == [1]
    transport.errors = []  # the API is back before exit: the final report lands, exit 0
    exits.clear()
    sdk._close_at_exit(r, exits.append)
    assert exits == []
    assert transport.last()[0] == protocol.MetricsReport(2, {"val_loss": 0.4}, True)


def test_pod_direction_and_kept_steps_come_from_the_environment() -> None:
    assert sdk.pod_from_env({}) is None
    assert sdk.pod_from_env({"POD_NAME": "p"}) == sdk.PodRef("default", "p")
    r = sdk.Reporter.from_env(environ={"KUBETUNE_METRIC": "acc", "KUBETUNE_DIRECTION": "maximize",
                                       "KUBETUNE_KEEP_STEPS": "1, 3,9"})
    assert (r.metric, r.minimize, r.keep_steps, r.transport) == ("acc", False, (1, 3, 9), None)


def test_kept_steps_keep_their_running_best_when_improvements_overflow_the_curve() -> None:
    transport, clock = FakeTransport(), FakeClock()
    r = reporter(transport, clock, keep_steps=(9,))
    for step in range(1, 401):  # improves at every step: more improvements than points
        clock.now += 2
        r.report(step=step, val_loss=1000.0 - step)
    curve = transport.last()[1]
    assert len(curve) <= 200
    assert (9, 991.0) in curve


# ---- the HTTPS transport ------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubetune-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class FakeApiServer:
    """A TLS server on 127.0.0.1 that records PATCH requests and answers with ``status``."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.requests: list[dict[str, object]] = []
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": json.loads(body)})
                payload = json.dumps({"kind": "Status", "message": f"status {owner.status}"})
                self.send_response(owner.status)
                if owner.status == 429:
                    self.send_header("Retry-After", "2")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeApiServer, Path]]:
    folder = tmp_path_factory.mktemp("api")
    cert, key = _self_signed(folder)
    server = FakeApiServer(cert, key)
    yield server, cert
    server.close()


def _kubeconfig(folder: Path, port: int, ca: Path) -> Path:
    (folder / "token").write_text("secret-token\n")
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "pod",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}",
                                               "certificate-authority": str(ca)}}],
        "users": [{"name": "u", "user": {"tokenFile": "token"}}],
        "contexts": [{"name": "pod", "context": {"cluster": "c", "user": "u"}}],
    }
    path = folder / "kubeconfig"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_the_https_transport_sends_a_merge_patch_with_the_bearer_token(
    api: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    server, ca = api
    server.status = 200
    env = {"POD_NAME": "trial-0", "POD_NAMESPACE": "team-a",
           "KUBECONFIG": str(_kubeconfig(tmp_path, server.port, ca))}
    transport = sdk.transport_from_env(env)
    assert transport is not None
    before = len(server.requests)
    transport.patch_annotations(sdk.PodRef("team-a", "trial-0"), {"kubetune.dev/metrics": "{}"})
    request = server.requests[before]
    headers = request["headers"]
    assert isinstance(headers, dict)
    assert request["path"] == "/api/v1/namespaces/team-a/pods/trial-0"
    assert headers["Content-Type"] == "application/merge-patch+json"
    assert headers["Authorization"] == "Bearer secret-token"
    assert request["body"] == {"metadata": {"annotations": {"kubetune.dev/metrics": "{}"}}}


def _transport(kubeconfig: Path) -> sdk.KubeTransport:
    transport = sdk.transport_from_env({"POD_NAME": "p", "KUBECONFIG": str(kubeconfig)})
    assert transport is not None
    return transport


def test_the_https_transport_classifies_errors(api: tuple[FakeApiServer, Path],
                                               tmp_path: Path) -> None:
    server, ca = api
    transport = _transport(_kubeconfig(tmp_path, server.port, ca))
    for status, kind, retry, after in ((429, errors.TooManyRequests, True, 2.0),
                                       (503, errors.ServerError, True, None),
                                       (403, errors.Forbidden, False, None),
                                       (401, errors.Unauthorized, True, None)):
        server.status = status
        with pytest.raises(sdk.TransportError) as caught:
            transport.patch_annotations(POD, {"a": "b"})
        assert isinstance(caught.value.error, kind)
        assert caught.value.retryable == retry
        assert caught.value.retry_after == after
        assert f"status {status}" in str(caught.value)
    server.status = 200


def test_refused_credentials_are_loaded_again(api: tuple[FakeApiServer, Path],
                                              tmp_path: Path) -> None:
    server, ca = api
    loads: list[int] = []

    def loader() -> logins.Credentials:
        loads.append(1)
        return logins.Credentials(server=f"https://127.0.0.1:{server.port}",
                                  ca_pem=ca.read_bytes(), authorization=f"Bearer t{len(loads)}")

    transport = sdk.KubeTransport(logins.Login(loader))
    server.status = 401
    with pytest.raises(sdk.TransportError):
        transport.patch_annotations(POD, {"a": "b"})
    server.status = 200
    transport.patch_annotations(POD, {"a": "b"})
    headers = server.requests[-1]["headers"]
    assert isinstance(headers, dict)
    assert headers["Authorization"] == "Bearer t2"
    assert len(loads) == 2


def test_the_https_transport_refuses_an_unknown_certificate_as_retryable(
    api: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    server, _ = api
    transport = sdk.KubeTransport(logins.Credentials(server=f"https://127.0.0.1:{server.port}"))
    with pytest.raises(sdk.TransportError) as caught:
        transport.patch_annotations(POD, {"a": "b"})
    assert caught.value.retryable
    assert "SSL" in str(caught.value) or "certificate" in str(caught.value)


def test_in_cluster_configuration_reads_the_service_account(
        api: tuple[FakeApiServer, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server, ca = api
    server.status = 200
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes(ca.read_bytes())
    env = {"POD_NAME": "p", "KUBERNETES_SERVICE_HOST": "127.0.0.1",
           "KUBERNETES_SERVICE_PORT": str(server.port)}
    transport = sdk.transport_from_env(env, account_dir=tmp_path)
    assert transport is not None
    transport.patch_annotations(POD, {"a": "b"})
    headers = server.requests[-1]["headers"]
    assert isinstance(headers, dict)
    assert headers["Authorization"].lower() == "bearer sa-token"  # the scheme has no case
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config to fall back on
    lost = sdk.transport_from_env({"POD_NAME": "p"}, account_dir=tmp_path)
    assert lost is not None
    with pytest.raises(sdk.TransportError, match="no Kubernetes credentials") as caught:
        lost.patch_annotations(POD, {"a": "b"})
    assert not caught.value.retryable


def test_a_kubeconfig_with_an_exec_plugin_works(api: tuple[FakeApiServer, Path],
                                                tmp_path: Path) -> None:
    server, ca = api
    server.status = 200
    plugin = tmp_path / "plugin.py"
    plugin.write_text("import json\nprint(json.dumps({'apiVersion': "
                      "'client.authentication.k8s.io/v1', 'kind': 'ExecCredential', "
                      "'status': {'token': 'from-plugin'}}))\n")
    config = json.loads(_kubeconfig(tmp_path, server.port, ca).read_text())
    config["users"] = [{"name": "u", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(plugin)], "interactiveMode": "Never"}}}]
    path = tmp_path / "exec.kubeconfig"
    path.write_text(json.dumps(config))
    _transport(path).patch_annotations(POD, {"a": "b"})
    headers = server.requests[-1]["headers"]
    assert isinstance(headers, dict)
    assert headers["Authorization"] == "Bearer from-plugin"


def test_the_sdk_imports_neither_kopf_nor_torch() -> None:
    code = ("import sys, kubetune.sdk; "
            "print(sorted(m for m in ('kopf', 'torch', 'kubernetes') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_a_toy_trial_in_a_pod_patches_its_own_annotations_over_https(
    api: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    server, ca = api
    server.status = 200
    before = len(server.requests)
    env = {"PATH": "/usr/bin:/bin", "POD_NAME": "trial-7", "POD_NAMESPACE": "team-b",
           "KUBECONFIG": str(_kubeconfig(tmp_path, server.port, ca)),
           "KUBETUNE_PARAMS": '{"x": 0.75}', "KUBETUNE_METRIC": "loss"}
    done = subprocess.run([sys.executable, "-m", "kubetune_trainer", "toy", "quadratic",
                           "--steps", "3"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # in a pod, reports go to the API server
    mine = server.requests[before:]
    assert {r["path"] for r in mine} == {"/api/v1/namespaces/team-b/pods/trial-7"}
    body = mine[-1]["body"]
    assert isinstance(body, dict)
    annotations = body["metadata"]["annotations"]
    metrics = protocol.parse_metrics(annotations[protocol.METRICS_ANNOTATION], "loss")
    assert metrics == protocol.MetricsReport(3, {"loss": 0.0625}, True)
    curve = protocol.parse_curve(annotations[protocol.CURVE_ANNOTATION])
    assert [s for s, _ in curve] == [1, 2, 3]
    assert len(mine) <= 2  # three quick reports: the first, then the final one
