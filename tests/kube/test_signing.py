"""kube.signing and observe with a key: an edited result is never believed
(docs/design.md section 3)."""

from __future__ import annotations

import json

from kubetune.core import protocol
from kubetune.core.protocol import TrialResult
from kubetune.core.trials import TrialState
from kubetune.kube import conventions as names
from kubetune.kube import jobs as builders
from kubetune.kube import observe, signing
from test_observe import job, pod

KEY = b"k" * 32
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
    return observe.observe(jobs, pods, metric="val_loss", minimize=True, key=KEY)


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
    plain = observe.observe([j], [], metric="val_loss", minimize=True)
    assert plain.trials[0].state is TrialState.SUCCEEDED
