"""kube.errors: every API answer becomes one typed class; nothing else reads status numbers."""

from __future__ import annotations

import json

import pytest
from kubetune.kube import errors


def _status(code: int, reason: str, message: str = "m", **details) -> str:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}
    if details:
        body["details"] = details
    return json.dumps(body)


@pytest.mark.parametrize(("code", "reason", "cls"), [
    (400, "BadRequest", errors.BadRequest),
    (401, "Unauthorized", errors.Unauthorized),
    (403, "Forbidden", errors.Forbidden),
    (404, "NotFound", errors.NotFound),
    (409, "Conflict", errors.Conflict),
    (409, "AlreadyExists", errors.AlreadyExists),
    (410, "Expired", errors.Gone),
    (422, "Invalid", errors.Invalid),
    (429, "TooManyRequests", errors.TooManyRequests),
    (500, "InternalError", errors.ServerError),
    (503, "ServiceUnavailable", errors.ServerError),
    (504, "Timeout", errors.ServerError),
])
def test_each_status_maps_to_its_class(code, reason, cls):
    e = errors.api_error(code, _status(code, reason), method="GET", path="/api/v1/pods")
    assert type(e) is cls
    assert isinstance(e, errors.ApiError)
    assert (e.status, e.reason, e.method, e.path) == (code, reason, "GET", "/api/v1/pods")


def test_already_exists_is_a_conflict():
    e = errors.api_error(409, _status(409, "AlreadyExists"))
    assert isinstance(e, errors.Conflict)
    assert not isinstance(errors.api_error(409, _status(409, "Conflict")), errors.AlreadyExists)


def test_details_are_kept():
    body = _status(404, "NotFound", 'namespaces "x" not found', kind="namespaces",
                   causes=[{"reason": "NamespaceTerminating"}, {"message": "no reason"}])
    e = errors.api_error(404, body)
    assert e.kind == "namespaces"
    assert e.causes == ("NamespaceTerminating", "")
    assert e.message == 'namespaces "x" not found'
    assert 'namespaces "x" not found' in str(e)


def test_a_body_that_is_not_a_status_is_the_message():
    e = errors.api_error(502, b"<html>bad gateway</html>", method="POST", path="/x")
    assert type(e) is errors.ServerError
    assert e.message == "<html>bad gateway</html>"
    assert str(e) == "POST /x: 502 <html>bad gateway</html>"
    assert type(errors.api_error(418, "[1, 2]")) is errors.ApiError


def test_a_watch_error_event_is_typed_by_its_status_object():
    e = errors.from_status({"kind": "Status", "code": 410, "reason": "Expired",
                            "message": "too old resource version"}, method="WATCH")
    assert type(e) is errors.Gone
    assert type(errors.from_status({})) is errors.ServerError


def test_retryable_classes():
    assert isinstance(errors.api_error(429, ""), errors.RETRYABLE)
    assert isinstance(errors.api_error(503, ""), errors.RETRYABLE)
    for code in (400, 401, 403, 404, 409, 410, 422):
        assert not isinstance(errors.api_error(code, ""), errors.RETRYABLE)
