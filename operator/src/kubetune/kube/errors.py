"""API errors, typed once: every caller catches a class, none matches on HTTP status numbers.

``api_error`` turns an answer (status code and body, a metav1.Status as JSON when the
apiserver wrote it) into the most specific class below. ``from_status`` does the same for a
watch's ERROR event, whose object is a Status. Retrying is decided by class: ``RETRYABLE``
lists the ones a caller may retry with backoff (throttled, server-side, timeouts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "RETRYABLE",
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "NotFound",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
    "api_error",
    "from_status",
]


class ApiError(Exception):
    """A non-2xx answer from the apiserver.

    ``status`` is the HTTP code, ``reason`` the Status reason word (NotFound, AlreadyExists,
    Expired, ...), ``kind`` the details.kind (what was missing, e.g. ``namespaces``) and
    ``causes`` the details.causes[].reason words (e.g. NamespaceTerminating).
    """

    def __init__(self, status: int, message: str, *, reason: str = "", kind: str = "",
                 causes: tuple[str, ...] = (), method: str = "", path: str = ""):
        self.status = status
        self.message = message
        self.reason = reason
        self.kind = kind
        self.causes = causes
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method or path else ""
        super().__init__(f"{where}{status} {message}")


class BadRequest(ApiError):
    """400: the request itself is malformed."""


class Unauthorized(ApiError):
    """401: no valid credentials (an expired token, a missing exec plugin result)."""


class Forbidden(ApiError):
    """403: authenticated, but RBAC or an admission policy said no."""


class NotFound(ApiError):
    """404: the object (or its namespace, see ``kind``) does not exist."""


class Conflict(ApiError):
    """409: a resourceVersion precondition failed, or the object exists (AlreadyExists)."""


class AlreadyExists(Conflict):
    """409 with reason AlreadyExists: a create found the name taken."""


class Gone(ApiError):
    """410: the resourceVersion a list or watch asked for is too old; list again."""


class Invalid(ApiError):
    """422: the object fails validation; ``causes`` and ``message`` say which field."""


class TooManyRequests(ApiError):
    """429: throttled by API priority and fairness; retry after a pause."""


class ServerError(ApiError):
    """5xx: the apiserver or something behind it failed; retry with backoff."""


RETRYABLE: tuple[type[ApiError], ...] = (TooManyRequests, ServerError)

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    410: Gone, 422: Invalid, 429: TooManyRequests,
}


def from_status(status_object: Mapping[str, Any], *, method: str = "",
                path: str = "") -> ApiError:
    """A metav1.Status (a watch ERROR event's object, or an error body) -> its class."""
    code = status_object.get("code")
    status = code if isinstance(code, int) else 500
    reason = str(status_object.get("reason") or "")
    details = status_object.get("details")
    details = details if isinstance(details, Mapping) else {}
    raw_causes = details.get("causes")
    causes = tuple(str(c.get("reason", "")) for c in raw_causes or ()
                   if isinstance(c, Mapping))
    cls: type[ApiError]
    if status == 409 and reason == "AlreadyExists":
        cls = AlreadyExists
    elif status >= 500:
        cls = ServerError
    else:
        cls = _BY_STATUS.get(status, ApiError)
    return cls(status, str(status_object.get("message") or reason or status),
               reason=reason, kind=str(details.get("kind") or ""), causes=causes,
               method=method, path=path)


def api_error(status: int, body: str | bytes, *, method: str = "", path: str = "") -> ApiError:
    """An HTTP answer -> its class. The body is read as a Status when it is one; any other
    body becomes the message as it is."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, Mapping):
        data = {"message": text}
    return from_status({**data, "code": status}, method=method, path=path)
