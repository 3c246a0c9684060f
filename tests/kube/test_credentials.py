"""Credentials from the kubernetes package's loader: every kind of user, held in memory, and
never left on disk."""

from __future__ import annotations

import base64
import datetime
import json
import os
import ssl
import stat
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubetune.kube import credentials as creds

SCANNED = [Path("/tmp"), Path("/dev/shm"), Path("/var/tmp")]


def _pair(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _kubeconfig(tmp_path: Path, user: dict, *, cluster: dict | None = None,
                name: str = "kubeconfig", context: str = "dev", namespace: str = "team") -> Path:
    ca, _ = _pair("ca")
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": cluster or {
            "server": "https://127.0.0.1:6443", "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u",
                                                   "namespace": namespace}}],
    }
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


def _files_holding(secret: bytes) -> list[Path]:
    found = []
    for top in SCANNED:
        if not top.is_dir():
            continue
        for folder, _, files in os.walk(top):
            for f in files:
                path = Path(folder, f)
                try:
                    if stat.S_ISREG(path.lstat().st_mode) and secret in path.read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


def test_token_user_with_inline_ca(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"token": "abc"})
    got = creds.load(environ={"KUBECONFIG": str(path)})
    assert got.server == "https://127.0.0.1:6443"
    assert got.authorization == "Bearer abc"
    assert got.namespace == "team"
    assert got.context == "dev"
    assert got.ca_pem is not None and got.ca_pem.startswith(b"-----BEGIN CERTIFICATE")
    assert got.expires is None
    assert "abc" not in repr(got)  # secrets stay out of logs


def test_client_certificate_is_loaded_from_memory_and_never_left_on_disk(
        tmp_path: Path) -> None:
    cert, key = _pair("kubetune-test-user")
    marker = key.splitlines()[1]  # a line of the key's base64 body
    before = _files_holding(marker)
    path = _kubeconfig(tmp_path, {"client-certificate-data": _b64(cert),
                                  "client-key-data": _b64(key)})
    got = creds.load(environ={"KUBECONFIG": str(path)})
    assert got.cert_pem == cert
    assert got.key_pem == key
    context = creds.ssl_context(got)  # loads the chain: a mismatched key would raise
    assert isinstance(context, ssl.SSLContext)
    path.unlink()  # the test's own kubeconfig holds the key, deliberately
    assert _files_holding(marker) == before


def test_exec_plugin_token_and_expiry(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    plugin.write_text(
        "import json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
        "'kind': 'ExecCredential', 'status': {'token': 'from-plugin', "
        f"'expirationTimestamp': '{expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}'}}}}))\n")
    path = _kubeconfig(tmp_path, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(plugin)], "interactiveMode": "Never"}})
    got = creds.load(environ={"KUBECONFIG": str(path)})
    assert got.authorization == "Bearer from-plugin"
    assert got.expires is not None and abs(got.expires - expiry.timestamp()) < 2


def test_failing_exec_plugin_names_the_context_instead_of_going_anonymous(
        tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text("import sys\nsys.stderr.write('session expired')\nsys.exit(3)\n")
    path = _kubeconfig(tmp_path, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(plugin)], "interactiveMode": "Never"}}, context="cloud")
    with pytest.raises(creds.CredentialsError) as info:
        creds.load(environ={"KUBECONFIG": str(path)})
    message = str(info.value)
    assert "context 'cloud'" in message
    assert "exec plugin" in message
    assert "session expired" in message


def test_token_file_is_read_again_after_a_minute(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")  # a newline at the end, as editors leave it
    path = _kubeconfig(tmp_path, {"tokenFile": str(token)})
    got = creds.load(environ={"KUBECONFIG": str(path)})
    assert got.authorization == "Bearer first"
    assert got.expires is None  # the token itself does not say when it ends
    assert got.reread_at is not None
    assert 0 < got.reread_at - time.time() <= creds.FILE_TOKEN_SECONDS
    assert not got.expired()
    assert got.expired(now=got.reread_at)


def test_several_kubeconfig_files_merge(tmp_path: Path) -> None:
    first = _kubeconfig(tmp_path, {"token": "one"}, name="a", context="first")
    second = _kubeconfig(tmp_path, {"token": "two"}, name="b", context="second")
    config = json.loads(second.read_text())
    del config["current-context"]  # the first file's current-context is the one in force
    second.write_text(json.dumps(config))
    env = {"KUBECONFIG": os.pathsep.join([str(first), str(second)])}
    assert creds.load(environ=env).context == "first"
    assert creds.load(environ=env, context="second").context == "second"


def test_missing_kubeconfig_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(creds.CredentialsError, match=str(missing)):
        creds.load(environ={"KUBECONFIG": str(missing)})


def test_unknown_context_names_it(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"token": "abc"})
    with pytest.raises(creds.CredentialsError, match="other"):
        creds.load(environ={"KUBECONFIG": str(path)}, context="other")


def test_in_cluster_service_account(tmp_path: Path) -> None:
    ca, _ = _pair("ca")
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes(ca)
    (tmp_path / "namespace").write_text("jobs")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    got = creds.load(environ=env, account_dir=tmp_path)
    assert got.server == "https://127.0.0.1:6443"
    assert (got.authorization or "").lower() == "bearer sa-token"  # the scheme has no case
    assert got.namespace == "jobs"
    assert got.ca_pem == ca


def test_login_loads_again_when_expired_or_invalidated() -> None:
    loads: list[creds.Credentials] = []

    def loader() -> creds.Credentials:
        loads.append(creds.Credentials(server="https://x", authorization=f"Bearer {len(loads)}",
                                       expires=time.time() + 3600))
        return loads[-1]

    login = creds.Login(loader)
    first = login.current()
    assert login.current() is first
    login.invalidate(first)
    second = login.current()
    assert second is not first and len(loads) == 2
    login.invalidate(first)  # a late refusal of old credentials keeps the new ones
    assert login.current() is second

    expiring = creds.Login(lambda: creds.Credentials(server="https://x",
                                                     expires=time.time() + 1))
    assert expiring.current() is not expiring.current()  # within the skew: loaded each time


def test_fixed_credentials_are_never_reloaded() -> None:
    fixed = creds.Credentials(server="https://x", authorization="Bearer t")
    login = creds.Login(fixed)
    assert login.current() is fixed
    login.invalidate(fixed)
    assert login.current() is fixed
