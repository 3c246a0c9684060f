"""The fake API answers as the real apiserver did: every recorded call (tests/kube/recorded),
replayed in order against it, succeeds or fails the same way, with the same typed error,
reason, details and message."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fakeapi import ANSWERS, FakeApi
from kubetune.kube import errors

# What the fake cannot judge by itself is primed, as a test primes it.
PRIMING = {
    "dry run of an invalid job": lambda fake, e: fake.refuse.__setitem__(
        e["path"], "dry run of an invalid job"),
    "dry run of a valid job": lambda fake, e: fake.refuse.clear(),
    "create job in a terminating namespace": lambda fake, e: fake.terminating.add(
        e["path"].split("/")[5]),
    "create job in a missing namespace": lambda fake, e: fake.missing_namespaces.add(
        e["path"].split("/")[5]),
    "watch from a compacted version": lambda fake, e: fake.compacted.add(
        e["params"]["resourceVersion"]),
}


def _versions(real: Any, fake: Any, seen: dict[str, str]) -> None:
    """Remember which fake resourceVersion stands for which real one."""
    if isinstance(real, dict) and isinstance(fake, dict):
        r = (real.get("metadata") or {}).get("resourceVersion")
        f = (fake.get("metadata") or {}).get("resourceVersion")
        if r and f:
            seen[r] = f


def _translated(body: Any, seen: dict[str, str]) -> Any:
    if isinstance(body, dict) and "metadata" in body:
        body = json.loads(json.dumps(body))
        version = body["metadata"].get("resourceVersion")
        if version in seen:
            body["metadata"]["resourceVersion"] = seen[version]
        elif version:
            body["metadata"]["resourceVersion"] = "not-a-fake-version"
    return body


async def _call(fake: FakeApi, entry: dict[str, Any], body: Any) -> Any:
    method, path, params = entry["method"], entry["path"], entry["params"]
    if method == "GET":
        return await fake.get(path, **params)
    if method == "POST":
        return await fake.create(path, body, dry_run=params.get("dryRun") == "All")
    if method == "PUT":
        return await fake.replace(path, body)
    if method == "PATCH" and entry["contentType"] == "application/json-patch+json":
        return await fake.json_patch(path, body)
    if method == "PATCH":
        return await fake.merge_patch(path, body)
    if method == "WATCH":
        return [e async for e in fake.watch(path, params["resourceVersion"])]
    raise AssertionError(f"unknown method {method}")


def _status(e: errors.ApiError) -> dict[str, Any]:
    return {"class": type(e).__name__, "status": e.status, "reason": e.reason, "kind": e.kind,
            "causes": e.causes, "message": e.message}


def test_the_fake_answers_every_recorded_call_as_the_real_apiserver_did() -> None:
    assert len(ANSWERS) >= 20, "answers.json is missing or truncated: re-record it"

    async def replay() -> None:
        fake = FakeApi()
        seen: dict[str, str] = {}
        for entry in ANSWERS:
            prime = PRIMING.get(entry["name"])
            if prime is not None:
                prime(fake, entry)
            real = entry["response"]
            body = entry["body"]
            body = [*body] if isinstance(body, list) else _translated(body, seen)
            if entry["method"] == "WATCH":
                (event,) = await _call(fake, entry, body)
                assert event == real, entry["name"]
                continue
            if entry["status"] >= 400:
                with pytest.raises(errors.ApiError) as caught:
                    await _call(fake, entry, body)
                expected = errors.api_error(entry["status"], json.dumps(real))
                assert _status(caught.value) == _status(expected), entry["name"]
                continue
            answer = await _call(fake, entry, body)
            _versions(real, answer, seen)
            if real.get("kind", "").endswith("List"):
                names = [o["metadata"]["name"] for o in real["items"]]
                assert [o["metadata"]["name"] for o in answer["items"]] == names
                continue
            for field in ("name", "namespace", "labels", "annotations"):
                assert answer["metadata"].get(field) == real["metadata"].get(field), \
                    f"{entry['name']}: metadata.{field}"
            if "status" in (entry["body"] or {}):
                for key, value in entry["body"]["status"].items():
                    assert answer["status"][key] == real["status"][key] == value

    asyncio.run(replay())


@pytest.mark.parametrize(("name", "cls"), [
    ("create job again", errors.AlreadyExists),
    ("patch missing job", errors.NotFound),
    ("json patch failed test", errors.Invalid),
    ("replace lease with a stale version", errors.Conflict),
    ("create job in a terminating namespace", errors.Forbidden),
])
def test_recorded_failures_are_the_typed_errors_the_operator_catches(name, cls) -> None:
    (entry,) = [e for e in ANSWERS if e["name"] == name]
    e = errors.api_error(entry["status"], json.dumps(entry["response"]))
    assert type(e) is cls
