"""The errors the command reports as one line to its user (exit status 1), not as a traceback."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """Something the user can fix; the message names the object, the value and the fix."""
