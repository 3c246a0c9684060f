"""Results the operator can tell from edits: an HMAC over each ``kubetune.dev/result``.

Anyone who may patch Jobs in a namespace could rewrite a trial's result annotation (a better
value, a Failed trial made Succeeded), and the samplers, the leaderboard and the goal would
believe it. So the operator signs what it records: ``kubetune.dev/result-signature`` is
``hmac-sha256:<key id>:<HMAC-SHA256>`` over the study's UID, the Job's UID, the trial number
and the result text. Nobody without the key can make a signature that verifies, nor move a
signed result to another Job or trial.

Where the key lives, so that results outlive any one operator: the Secret
``kubetune-result-key`` in the operator's namespace holds a keyring, one key per data field
whose name starts with ``key`` (``key``, ``key-2027-01``, ...). The operator signs with the
field whose name sorts last and verifies with every one. It creates the Secret (one field,
``key``) when missing, and nothing else ever deletes it: the chart does not own it, so a
``helm uninstall`` and a reinstall under any release name find the same keys, and every
replica reads the same Secret. To rotate, add a field whose name sorts after the others and
restart the operator; keep the old fields as long as their results matter.

What a signature tells: one that verifies is believed. One made with a key of the ring that
does not verify (or none at all) is an edit, so the reader does not believe it
(``kube.observe``). One made with a key the ring does not hold (another operator's, or a
key since removed) cannot be judged: it is not believed, and it is never rewritten either.

``sign``, ``verify`` and ``judge`` are pure; ``ensure_key`` does the I/O.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubetune.kube import conventions as names
from kubetune.kube.client import Client
from kubetune.kube.errors import AlreadyExists, ApiError

__all__ = [
    "KEY_SECRET",
    "SIGNATURE_ANNOTATION",
    "Keyring",
    "Verdict",
    "ensure_key",
    "judge",
    "key_id",
    "sign",
    "verify",
]

log = logging.getLogger("kubetune.signing")

KEY_SECRET = "kubetune-result-key"
SIGNATURE_ANNOTATION = "kubetune.dev/result-signature"
_KEY_FIELD = "key"
_PREFIX = "hmac-sha256:"
_MIN_KEY_BYTES = 16


def key_id(key: bytes) -> str:
    """A short public name of ``key`` (the signature says which key made it). Pure."""
    return hashlib.sha256(b"kubetune.dev/result-key-id\0" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Keyring:
    """The keys of the Secret, oldest name first; the last one signs."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a keyring needs at least one key")

    @classmethod
    def of(cls, key: bytes | Keyring) -> Keyring:
        return key if isinstance(key, Keyring) else cls((key,))

    @property
    def signing(self) -> bytes:
        return self.keys[-1]

    def by_id(self, kid: str) -> bytes | None:
        return next((k for k in self.keys if key_id(k) == kid), None)


class Verdict(enum.Enum):
    """What a result's signature says: VERIFIED (believe it), EDITED (made with none of the
    ring's keys that would verify, or missing: not the operator's), UNKNOWN_KEY (made with a
    key the ring does not hold: cannot be judged)."""

    VERIFIED = "verified"
    EDITED = "edited"
    UNKNOWN_KEY = "unknown-key"


def _message(job: Mapping[str, Any], result_text: str) -> bytes:
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    parts = (labels.get(names.STUDY_UID_LABEL, ""), meta.get("uid", ""),
             labels.get(names.TRIAL_LABEL, ""), result_text)
    # Length-prefixed, so that no two different tuples give one message.
    return b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)


def _digest(key: bytes, job: Mapping[str, Any], result_text: str) -> str:
    return hmac.new(key, _message(job, result_text), hashlib.sha256).hexdigest()


def sign(key: bytes | Keyring, job: Mapping[str, Any], result_text: str) -> str:
    """The signature annotation's value for ``result_text`` recorded on ``job``, made with the
    ring's signing key. Pure."""
    signing_key = Keyring.of(key).signing
    return f"{_PREFIX}{key_id(signing_key)}:{_digest(signing_key, job, result_text)}"


def judge(key: bytes | Keyring, job: Mapping[str, Any], result_text: str,
          signature: Any) -> Verdict:
    """What ``signature`` says of ``result_text`` on ``job`` given the ring. Pure."""
    ring = Keyring.of(key)
    if not isinstance(signature, str) or not signature.startswith(_PREFIX):
        return Verdict.EDITED
    body = signature.removeprefix(_PREFIX)
    kid, sep, digest = body.partition(":")
    if sep:
        found = ring.by_id(kid)
        if found is None:
            return Verdict.UNKNOWN_KEY
        ok = hmac.compare_digest(_digest(found, job, result_text), digest)
        return Verdict.VERIFIED if ok else Verdict.EDITED
    # The first format named no key: any key of the ring may have made it, and one outside
    # the ring may have too, so a mismatch cannot be called an edit.
    if any(hmac.compare_digest(_digest(k, job, result_text), body) for k in ring.keys):
        return Verdict.VERIFIED
    return Verdict.UNKNOWN_KEY


def verify(key: bytes | Keyring, job: Mapping[str, Any], result_text: str,
           signature: Any) -> bool:
    """Whether ``signature`` is the operator's for ``result_text`` on ``job``. Pure."""
    return judge(key, job, result_text, signature) is Verdict.VERIFIED


async def ensure_key(client: Client, namespace: str) -> Keyring:
    """The keyring from the Secret ``kubetune-result-key`` in ``namespace``, created with one
    random 32-byte key when missing (a racing replica's Secret wins; both then read the same).
    """
    path = f"/api/v1/namespaces/{namespace}/secrets"
    body = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": KEY_SECRET, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "kubetune",
                                "app.kubernetes.io/part-of": "kubetune"}},
        "data": {_KEY_FIELD: base64.b64encode(secrets.token_bytes(32)).decode()},
    }
    try:
        created = await client.create(path, body)
        log.info("created the result-signing key Secret %s/%s", namespace, KEY_SECRET)
        return _ring_of(created, namespace)
    except AlreadyExists:
        pass
    except ApiError as e:
        raise _explain(e, namespace) from e
    try:
        ring = _ring_of(await client.get(f"{path}/{KEY_SECRET}"), namespace)
    except ApiError as e:
        raise _explain(e, namespace) from e
    log.info("result-signing keys from Secret %s/%s: %d, signing with %s", namespace,
             KEY_SECRET, len(ring.keys), key_id(ring.signing))
    return ring


def _ring_of(secret: Mapping[str, Any], namespace: str) -> Keyring:
    data = secret.get("data") or {}
    keys = []
    for field in sorted(f for f in data if f.startswith(_KEY_FIELD)):
        try:
            key = base64.b64decode(data[field] or "", validate=True)
        except ValueError:
            key = b""
        if len(key) < _MIN_KEY_BYTES:
            raise RuntimeError(
                f"Secret {namespace}/{KEY_SECRET}: data.{field} holds {len(key)} bytes, too few "
                f"for a signing key (at least {_MIN_KEY_BYTES}); set it to 32 random bytes, "
                f"base64-encoded (e.g. `head -c 32 /dev/urandom | base64`), or remove the field "
                f"if no result was signed with it")
        keys.append(key)
    if not keys:
        raise RuntimeError(
            f"Secret {namespace}/{KEY_SECRET} holds no data field named key*; add one with 32 "
            f"random bytes, base64-encoded, or delete the Secret and the operator creates it "
            f"(results signed with keys no longer in it are then not believed)")
    return Keyring(tuple(keys))


def _explain(e: ApiError, namespace: str) -> RuntimeError:
    return RuntimeError(
        f"the operator needs create and get on Secret {namespace}/{KEY_SECRET} (its "
        f"result-signing keys) and got: {e}; grant them in its namespace (the Helm chart does)"
    )
