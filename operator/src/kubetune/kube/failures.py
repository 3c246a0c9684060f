"""How the operator meets failures: a capped exponential backoff, and a log that says each
failure once (with what it means) instead of once per retry.

A failure that repeats (the apiserver down for a minute, a missing RBAC grant) is logged
when it starts, with its meaning, and again only when it changes or ends, so a retry loop
never floods the log and never hides the cause either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kubetune.kube import errors

__all__ = ["Backoff", "FailureLog", "describe"]


@dataclass
class Backoff:
    """Delays of ``first``, doubling up to ``cap`` seconds; ``reset`` after a success."""

    first: float = 1.0
    cap: float = 10.0
    _next: float = field(default=0.0, init=False)

    def next(self) -> float:
        delay = self._next or self.first
        self._next = min(delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = 0.0


def describe(e: BaseException) -> str:
    """What an error means for the work that met it, in words an operator's user acts on."""
    if isinstance(e, errors.Forbidden):
        return (f"{e}: the operator's ServiceAccount lacks a permission (install the Helm "
                "chart's RBAC, or grant it); retrying until it is granted")
    if isinstance(e, errors.Unauthorized):
        return f"{e}: the operator's credentials were refused; retrying"
    if isinstance(e, errors.RETRYABLE):
        return f"{e}: the apiserver is overloaded or failing; retrying with backoff"
    if isinstance(e, errors.ApiError):
        return f"{e}: retrying with backoff"
    if isinstance(e, (OSError, TimeoutError)):
        return f"cannot reach the apiserver ({type(e).__name__}: {e}); retrying with backoff"
    return f"{type(e).__name__}: {e}"


@dataclass
class FailureLog:
    """Logs a failure of ``key`` once per streak: again only when its text changes; a
    success after failures is logged once too."""

    logger: logging.Logger
    _failing: dict[str, str] = field(default_factory=dict)

    def failed(self, key: str, what: str, e: BaseException, *,
               level: int = logging.ERROR) -> bool:
        """Log ``what`` failed with ``e`` unless the same was said last time; True if logged."""
        text = describe(e)
        if self._failing.get(key) == text:
            self.logger.debug("%s failed again: %s", what, text)
            return False
        self._failing[key] = text
        self.logger.log(level, "%s failed: %s", what, text,
                        exc_info=not isinstance(e, (errors.ApiError, OSError, TimeoutError)))
        return True

    def succeeded(self, key: str, what: str) -> None:
        if self._failing.pop(key, None) is not None:
            self.logger.info("%s works again", what)

    def forget(self, key: str) -> None:
        self._failing.pop(key, None)
