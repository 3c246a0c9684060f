"""kube.signing and observe with a key: an edited result is never believed
(docs/design.md section 3)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from kubetune.core import protocol
from kubetune.core.protocol import TrialResult
from kubetune.core.trials import TrialState
from kubetune.kube import conventions as names
from kubetune.kube import errors, observe, signing
from kubetune.kube import jobs as builders
from test_observe import job, pod

KEY = b"k" * 32
READER = observe.Reader("val_loss", True)
RESULT = TrialResult(TrialState.SUCCEEDED, None, 0.25, 3, ((1, 0.9), (3, 0.25)))


def signed(n: int, result: TrialResult = RESULT, **kw) -> dict:
    """Trial ``n``'s Job with ``result`` recorded as the operator records it."""
    j = job(n, **kw)
    j["metadata"]["uid"] = f"job-uid-{n}"
    patch = builders.result_patch(result, job=j, key=KEY)
    j["metadata"]["annotations"].update(patch["metadata"]["annotations"])
    return j


def edit(j: dict, **changes) -> dict:
    doc = json.loads(j["metadata"]["annotations"][names.RESULT_ANNOTATION])
    j["metadata"]["annotations"][names.RESULT_ANNOTATION] = json.dumps({**doc, **changes})
    return j


def look(jobs: list[dict], pods: list[dict]) -> observe.Observation:
    return observe.observe(jobs, pods, observe.Reader("val_loss", True), key=KEY)


def test_a_signature_binds_the_text_the_job_and_the_key() -> None:
    j = signed(0)
    text = j["metadata"]["annotations"][names.RESULT_ANNOTATION]
    sig = j["metadata"]["annotations"][signing.SIGNATURE_ANNOTATION]
    assert signing.verify(KEY, j, text, sig)
    assert not signing.verify(b"x" * 32, j, text, sig)
    assert not signing.verify(KEY, j, text.replace("0.25", "0.24"), sig)
    assert not signing.verify(KEY, j, text, None)
    other = signed(1)  # the same text moved to another trial's Job does not verify
    assert not signing.verify(KEY, other, text, sig)


def test_a_signed_result_is_believed() -> None:
    seen = look([signed(0, complete=True)], [])
    assert seen.trials[0].state is TrialState.SUCCEEDED and seen.trials[0].value == 0.25
    assert seen.unverified == () and seen.to_record == {}


def test_an_edited_result_is_re_derived_from_the_pod_that_is_still_there() -> None:
    j = edit(signed(0, complete=True), value=-1000.0)
    p = pod(0, phase="Succeeded", metrics={"step": 3, "metrics": {"val_loss": 0.25},
                                           "final": True}, curve=[[1, 0.9], [3, 0.25]])
    seen = look([j], [p])
    assert seen.unverified == (0,)
    assert seen.to_record[0].value == 0.25
    assert seen.trials[0].state is TrialState.SUCCEEDED and seen.trials[0].value == 0.25


def test_an_edited_result_without_its_pod_is_lost() -> None:
    seen = look([edit(signed(0, complete=True), value=-1000.0)], [])
    assert seen.unverified == (0,) and seen.to_record == {}
    assert seen.trials[0].state is TrialState.LOST
    assert seen.trials[0].reason == "ResultUnverified"


def test_an_edited_pruned_result_is_lost_as_its_pod_cannot_tell_it() -> None:
    pruned = TrialResult(TrialState.PRUNED, "EarlyStopped", 0.9, 1, ((1, 0.9),))
    j = edit(signed(0, pruned, failed="DeadlineExceeded"), state="Succeeded", value=0.0)
    p = pod(0, phase="Failed", reason="DeadlineExceeded",
            metrics={"step": 1, "metrics": {"val_loss": 0.9}})
    seen = look([j], [p])
    assert seen.trials[0].state is TrialState.LOST and seen.to_record == {}


def test_an_unsigned_result_is_not_believed_and_without_a_key_it_is() -> None:
    j = job(0, complete=True, result=protocol.encode_result(RESULT))
    assert look([j], []).trials[0].state is TrialState.LOST
    plain = observe.observe([j], [], observe.Reader("val_loss", True))
    assert plain.trials[0].state is TrialState.SUCCEEDED


# ---- keys that outlive an operator: a keyring, and results no operator rewrites -----------

OLD_KEY, NEW_KEY = b"o" * 32, b"n" * 32
STOPPED = TrialResult(TrialState.STOPPED, "MaxTrialsReached", 0.4, 2, ((1, 0.5), (2, 0.4)),
                      "study ended")


def signed_with(key: bytes | signing.Keyring, n: int, result: TrialResult, **kw) -> dict:
    j = job(n, **kw)
    j["metadata"]["uid"] = f"job-uid-{n}"
    patch = builders.result_patch(result, job=j, key=key)
    j["metadata"]["annotations"].update(patch["metadata"]["annotations"])
    return j


def a_pod_that_tells_another_story(n: int) -> dict:
    # The pod of a trial the operator stopped: it exited non-zero when its deadline came, so
    # re-deriving from it would say Failed.
    return pod(n, phase="Failed", exit_code=143, metrics={"step": 2, "metrics": {"val_loss": 0.4}})


def test_the_last_key_of_the_ring_signs_and_every_key_verifies() -> None:
    ring = signing.Keyring((OLD_KEY, NEW_KEY))
    j = signed_with(ring, 0, RESULT, complete=True)
    sig = j["metadata"]["annotations"][signing.SIGNATURE_ANNOTATION]
    assert sig.split(":")[1] == signing.key_id(NEW_KEY)
    old = signed_with(OLD_KEY, 1, RESULT, complete=True)
    seen = observe.observe([j, old], [], observe.Reader("val_loss", True), key=ring)
    assert [t.state for t in seen.trials] == [TrialState.SUCCEEDED] * 2
    assert seen.unverified == () and seen.to_record == {}


def test_a_result_signed_with_a_key_not_in_the_ring_is_never_rewritten() -> None:
    # Another operator (or the same after its key was replaced) reads a finished history.
    j = signed_with(OLD_KEY, 0, STOPPED, failed="DeadlineExceeded")
    seen = observe.observe([j], [a_pod_that_tells_another_story(0)], READER,
                           key=NEW_KEY)
    assert seen.to_record == {}, "a recorded result was re-derived"
    (t,) = seen.trials
    assert (t.state, t.reason) == (TrialState.LOST, "ResultKeyUnknown")
    assert signing.key_id(OLD_KEY) in t.message and signing.KEY_SECRET in t.message
    assert seen.unverified == (0,)
    # Given the old key back (a rotation keeps it), the result is believed as recorded.
    ring = signing.Keyring((OLD_KEY, NEW_KEY))
    again = observe.observe([j], [a_pod_that_tells_another_story(0)], READER,
                           key=ring)
    assert again.trials[0].state is TrialState.STOPPED and again.to_record == {}


def test_a_signature_in_the_first_format_is_verified_by_any_key_and_never_rewritten() -> None:
    j = job(0, failed="DeadlineExceeded", result=protocol.encode_result(STOPPED))
    j["metadata"]["uid"] = "job-uid-0"
    text = j["metadata"]["annotations"][names.RESULT_ANNOTATION]
    digest = signing.sign(OLD_KEY, j, text).split(":")[-1]
    j["metadata"]["annotations"][signing.SIGNATURE_ANNOTATION] = f"hmac-sha256:{digest}"
    ring = signing.Keyring((OLD_KEY, NEW_KEY))
    assert signing.judge(ring, j, text, f"hmac-sha256:{digest}") is signing.Verdict.VERIFIED
    assert signing.judge(NEW_KEY, j, text, f"hmac-sha256:{digest}") is \
        signing.Verdict.UNKNOWN_KEY
    seen = observe.observe([j], [a_pod_that_tells_another_story(0)], READER,
                           key=NEW_KEY)
    assert seen.to_record == {} and seen.trials[0].reason == "ResultKeyUnknown"


def test_an_edit_is_told_from_an_unknown_key() -> None:
    j = signed_with(NEW_KEY, 0, RESULT, complete=True)
    text = j["metadata"]["annotations"][names.RESULT_ANNOTATION]
    sig = j["metadata"]["annotations"][signing.SIGNATURE_ANNOTATION]
    assert signing.judge(NEW_KEY, j, text, sig) is signing.Verdict.VERIFIED
    assert signing.judge(NEW_KEY, j, text + " ", sig) is signing.Verdict.EDITED
    assert signing.judge(NEW_KEY, j, text, None) is signing.Verdict.EDITED
    assert signing.judge(NEW_KEY, j, text, "md5:x") is signing.Verdict.EDITED
    # A made-up key id is no way to a belief: it is Lost, as any unknown key.
    forged = sig.replace(signing.key_id(NEW_KEY), "0" * 16)
    assert signing.judge(NEW_KEY, j, text, forged) is signing.Verdict.UNKNOWN_KEY


class _Secrets:
    """The two answers ensure_key meets: the Secret created, or there already."""

    def __init__(self, existing: dict | None) -> None:
        self.existing = existing

    async def create(self, path: str, body: dict) -> dict:
        if self.existing is not None:
            raise errors.api_error(409, json.dumps(
                {"kind": "Status", "status": "Failure", "reason": "AlreadyExists", "code": 409,
                 "message": f'secrets "{signing.KEY_SECRET}" already exists'}))
        return body

    async def get(self, path: str) -> dict:
        assert self.existing is not None
        return self.existing


def _secret(**fields: bytes) -> dict:
    return {"kind": "Secret", "metadata": {"name": signing.KEY_SECRET},
            "data": {k.replace("_", "-"): base64.b64encode(v).decode() for k, v in fields.items()}}


def test_ensure_key_reads_the_ring_in_name_order() -> None:
    existing = _secret(key_2027_01=NEW_KEY, key=OLD_KEY, other=b"x")
    ring = asyncio.run(signing.ensure_key(_Secrets(existing), "ops"))
    assert ring.keys == (OLD_KEY, NEW_KEY) and ring.signing == NEW_KEY
    made = asyncio.run(signing.ensure_key(_Secrets(None), "ops"))
    assert len(made.signing) == 32


def test_a_short_key_is_refused_with_the_fix() -> None:
    with pytest.raises(RuntimeError, match=r"data\.key-2 holds 3 bytes.*base64"):
        asyncio.run(signing.ensure_key(_Secrets(_secret(key=OLD_KEY, key_2=b"abc")), "ops"))
    with pytest.raises(RuntimeError, match="no data field named key"):
        asyncio.run(signing.ensure_key(_Secrets(_secret(other=OLD_KEY)), "ops"))
