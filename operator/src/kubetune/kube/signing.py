"""Results the operator can tell from edits: an HMAC over each ``kubetune.dev/result``.

Anyone who may patch Jobs in a namespace could rewrite a trial's result annotation (a better
value, a Failed trial made Succeeded), and the samplers, the leaderboard and the goal would
believe it. So the operator signs what it records: ``kubetune.dev/result-signature`` is an
HMAC-SHA256, keyed by a random key in a Secret of the operator's own namespace
(``kubetune-result-key``), over the study's UID, the Job's UID, the trial number and the
result text. Only the operator can read that Secret, so nobody else can make a signature that
verifies, nor move a signed result to another Job or trial.

The key is in the cluster, as the Lease is: the operator holds no state of its own and creates
the Secret when it is missing. ``sign`` and ``verify`` are pure; ``ensure_key`` does the I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from kubetune.kube import conventions as names
from kubetune.kube.client import ApiError, Client

__all__ = ["KEY_SECRET", "SIGNATURE_ANNOTATION", "ensure_key", "sign", "verify"]

log = logging.getLogger("kubetune.signing")

KEY_SECRET = "kubetune-result-key"
SIGNATURE_ANNOTATION = "kubetune.dev/result-signature"
_KEY_FIELD = "key"
_PREFIX = "hmac-sha256:"


def _message(job: Mapping[str, Any], result_text: str) -> bytes:
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    parts = (labels.get(names.STUDY_UID_LABEL, ""), meta.get("uid", ""),
             labels.get(names.TRIAL_LABEL, ""), result_text)
    # Length-prefixed, so that no two different tuples give one message.
    return b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)


def sign(key: bytes, job: Mapping[str, Any], result_text: str) -> str:
    """The signature annotation's value for ``result_text`` recorded on ``job``. Pure."""
    digest = hmac.new(key, _message(job, result_text), hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify(key: bytes, job: Mapping[str, Any], result_text: str, signature: Any) -> bool:
    """Whether ``signature`` is this operator's for ``result_text`` on ``job``. Pure."""
    if not isinstance(signature, str):
        return False
    return hmac.compare_digest(sign(key, job, result_text), signature)


async def ensure_key(client: Client, namespace: str) -> bytes:
    """The signing key from the Secret ``kubetune-result-key`` in ``namespace``, created with
    32 random bytes when missing (a racing replica's Secret wins; both then read the same).
    """
    path = f"/api/v1/namespaces/{namespace}/secrets"
    body = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": KEY_SECRET, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "kubetune"}},
        "data": {_KEY_FIELD: base64.b64encode(secrets.token_bytes(32)).decode()},
    }
    try:
        created = await client.create(path, body)
        log.info("created the result-signing key Secret %s/%s", namespace, KEY_SECRET)
        return _key_of(created, namespace)
    except ApiError as e:
        if e.status != 409:
            raise _explain(e, namespace) from e
    try:
        return _key_of(await client.get(f"{path}/{KEY_SECRET}"), namespace)
    except ApiError as e:
        raise _explain(e, namespace) from e


def _key_of(secret: Mapping[str, Any], namespace: str) -> bytes:
    text = (secret.get("data") or {}).get(_KEY_FIELD)
    key = base64.b64decode(text) if text else b""
    if len(key) < 16:
        raise RuntimeError(
            f"Secret {namespace}/{KEY_SECRET}: data.{_KEY_FIELD} holds {len(key)} bytes, too few "
            "for a signing key; delete the Secret and the operator creates a new one (results "
            "signed with the old key are then re-derived from their pods or re-run)"
        )
    return key


def _explain(e: ApiError, namespace: str) -> RuntimeError:
    return RuntimeError(
        f"the operator needs create and get on Secret {namespace}/{KEY_SECRET} (its "
        f"result-signing key) and got: {e}; grant them in its namespace (the Helm chart does)"
    )
