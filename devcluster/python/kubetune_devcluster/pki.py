"""Certificates and keys for devcluster: one CA, serving certs, client certs, the SA key.

Everything is written once under ``<state>/pki`` and reused while the state directory lives.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "issue_certificate", "issue_pki"]

_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Pki:
    """Paths of the files devcluster's components are started with."""

    dir: Path

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.cert("ca")

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"


def _write_key(path: Path, key) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures for every certificate; a CA also signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True, key_encipherment=False, content_commitment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )


def _issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    cn: str,
    *,
    orgs: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, orgs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def issue_pki(directory: Path, *, nodes: tuple[str, ...], service_ip: str) -> Pki:
    """Create (or reuse) the CA and every certificate devcluster needs.

    Client identities: ``admin`` (system:masters), the controller manager, the scheduler, the
    apiserver's kubelet client, and one ``system:node:<name>`` per node (group system:nodes),
    which NodeRestriction and the Node authorizer key on. Serving certs: the apiserver
    (127.0.0.1, localhost and the in-cluster names) and one per node agent (127.0.0.1).
    """
    pki = Pki(directory)
    if (directory / "complete").exists():
        return pki
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_name = _name("kubetune-devcluster-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pki.key("ca"), ca_key)

    issued = {
        "apiserver": dict(
            cn="kube-apiserver", server=True,
            dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"),
            ips=("127.0.0.1", service_ip),
        ),
        "admin": dict(cn="kubetune-admin", orgs=("system:masters",), client=True),
        "controller-manager": dict(cn="system:kube-controller-manager", client=True),
        "scheduler": dict(cn="system:kube-scheduler", client=True),
        "apiserver-kubelet-client": dict(
            cn="kube-apiserver-kubelet-client", orgs=("system:masters",), client=True
        ),
    }
    for node in nodes:
        issued[f"node-{node}"] = dict(cn=f"system:node:{node}", orgs=("system:nodes",), client=True)
        issued[f"node-{node}-serving"] = dict(cn=node, server=True, dns=(node, "localhost"),
                                              ips=("127.0.0.1",))
    for name, opts in issued.items():
        cert, key = _issue(ca_cert, ca_key, **opts)
        pki.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki.key(name), key)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (directory / "complete").touch()
    return pki


def issue_certificate(
    pki: Pki,
    name: str,
    *,
    cn: str,
    orgs: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
    ips: tuple[str, ...] = (),
) -> None:
    """One more certificate from the cluster's CA, for a component that ``issue_pki`` does not
    know (an addon); kept while the state directory lives."""
    if pki.cert(name).exists() and pki.key(name).exists():
        return
    ca_cert = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.key("ca").read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"devcluster: {pki.key('ca')} is not the EC key issue_pki writes")
    cert, key = _issue(ca_cert, ca_key, cn, orgs=orgs, server=server, client=client, ips=ips)
    _write_key(pki.key(name), key)
    pki.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
