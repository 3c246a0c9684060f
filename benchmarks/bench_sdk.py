"""SDK benchmark: what ``kubetune.sdk`` costs a trial, for this tree and a baseline side by side.

Each figure is measured in fresh Python processes, the baseline's and this tree's alternately,
so that both see the same machine load:

- import: ``import kubetune.sdk``;
- first report: import, credentials from the pod's kubeconfig, and a final report delivered
  (one PATCH), as a trial that reports once would pay it;
- report() call: what one non-final ``report()`` costs the training thread (coalesced: the
  PATCH goes out from the SDK's own thread);
- PATCH: one flushed report, request to answer.

The API server is a loopback HTTPS server that answers every PATCH with 200, so the figures are
the SDK's own cost, not an apiserver's. The pod's kubeconfig is the one devcluster gives a trial
(a tokenFile user and a CA file).

    python benchmarks/bench_sdk.py [--baseline REV] [--runs 7] [--readme]
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench_operator import publish

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sdk.md"
MARK = ("<!-- bench:sdk:start -->", "<!-- bench:sdk:end -->")

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import kubetune.sdk as sdk
t1 = time.perf_counter()
sdk.report(step=0, loss=1.0, final=True)
t2 = time.perf_counter()
reporter = sdk.get_reporter()
calls = []
for i in range(1, 2001):
    s = time.perf_counter()
    reporter.report(step=i, loss=1.0 / i)
    calls.append(time.perf_counter() - s)
patches = []
for i in range(2001, 2001 + int(sys.argv[1])):
    reporter.report(step=i, loss=1.0 / i)
    s = time.perf_counter()
    ok = reporter.flush()
    patches.append(time.perf_counter() - s)
    assert ok, "a flush failed"
calls.sort(); patches.sort()
print(json.dumps({"import": t1 - t0, "first": t2 - t0, "call": calls[len(calls) // 2],
                  "patch": patches[len(patches) // 2]}))
"""


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_PATCH(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"kind": "Pod", "metadata": {"name": "trial"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA), written to ``folder``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _serve(cert: Path, key: Path) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _export(rev: str, folder: Path) -> Path:
    """The baseline's import package tree (``git archive REV operator/src``) under ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "operator/src"],
                             check=True, capture_output=True).stdout
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "operator" / "src"


def _probe(src: Path, env: dict[str, str], patches: int) -> dict[str, float]:
    run_env = {**env, "PYTHONPATH": os.pathsep.join([str(src), env.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", PROBE, str(patches)], env=run_env,
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"probe of {src} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default="main", help="git revision to compare with")
    p.add_argument("--runs", type=int, default=7, help="fresh processes per tree")
    p.add_argument("--patches", type=int, default=30, help="flushed reports per process")
    p.add_argument("--readme", action="store_true", help="also write the table into README.md")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cert, key = _certificate(folder)
        server = _serve(cert, key)
        token = folder / "token"
        token.write_text("bench-token")
        kubeconfig = folder / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "pod",
            "clusters": [{"name": "c", "cluster": {
                "server": f"https://127.0.0.1:{server.server_address[1]}",
                "certificate-authority": str(cert)}}],
            "users": [{"name": "pod", "user": {"tokenFile": str(token)}}],
            "contexts": [{"name": "pod", "context": {"cluster": "c", "user": "pod",
                                                     "namespace": "bench"}}],
        }))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBETUNE_")}
        env.update({"KUBECONFIG": str(kubeconfig), "POD_NAME": "trial", "POD_NAMESPACE": "bench",
                    "KUBETUNE_METRIC": "loss", "NO_PROXY": "127.0.0.1"})
        baseline_src = _export(args.baseline, folder / "baseline")
        trees = {f"baseline ({args.baseline})": baseline_src,
                 "this tree": ROOT / "operator" / "src"}
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, src in trees.items():
                samples[name].append(_probe(src, env, args.patches))
        server.shutdown()

    def median(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    rows = ["| tree | import kubetune.sdk | first report delivered | report() call | PATCH |",
            "|---|---:|---:|---:|---:|"]
    for name in trees:
        rows.append(f"| {name} | {median(name, 'import') * 1e3:.0f} ms | "
                    f"{median(name, 'first') * 1e3:.0f} ms | "
                    f"{median(name, 'call') * 1e6:.1f} µs | {median(name, 'patch') * 1e3:.2f} ms |")
    text = "\n".join(rows) + (
        f"\n\nMedians of {args.runs} fresh processes per tree, run alternately on one machine "
        f"({os.cpu_count()} cores); report() call: median of 2,000 calls; PATCH: median of "
        f"{args.patches} flushes per process, against a loopback HTTPS server. "
        "`python benchmarks/bench_sdk.py --baseline REV` reruns it.")
    publish(RESULTS, "SDK benchmark", text, MARK, args.readme)


if __name__ == "__main__":
    main()
