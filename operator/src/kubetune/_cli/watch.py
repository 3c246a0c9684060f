"""``kubetune watch``: redraw a study's progress until it ends.

On a terminal each frame replaces the last; into a pipe or a file a frame is written only when
something a reader cares about changed (counts, best value, state, events), so a log of a
watch stays short.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

from kubetune._cli import render
from kubetune._cli.cluster import ClusterError, NotFoundError
from kubetune._cli.views import StudyView

__all__ = ["EXIT_SUSPENDED", "EXIT_TIMEOUT", "ending", "watch"]

EXIT_SUSPENDED = 3
EXIT_TIMEOUT = 124  # as timeout(1)
_CLEAR = "\x1b[H\x1b[2J"


def _signature(view: StudyView) -> tuple:
    best = view.best()
    return (view.state, view.message, tuple(sorted(view.counts().items())),
            None if best is None else (best.number, best.value),
            view.events[-1] if view.events else None)


def _said(condition: Mapping[str, Any] | None) -> str:
    if not condition:
        return ""
    words = [str(condition.get(k) or "") for k in ("reason", "message")]
    return ": " + " - ".join(w for w in words if w) if any(words) else ""


def ending(view: StudyView) -> tuple[int, str] | None:
    """How a watch of ``view`` ends now, as (exit status, the line to print), or None while it
    goes on. Reads ``status.phase`` where the operator writes it, else the conditions."""
    phase = view.status.get("phase")
    if not phase:
        if view.outcome is not None:
            phase = view.outcome
        elif view.is_true("Stalled"):
            phase = "Invalid"
        elif view.is_true("Suspended"):
            phase = "Suspended"
    name = view.name
    if phase == "Succeeded":
        return 0, f"study {name} succeeded{_said(view.condition('Succeeded'))}"
    if phase == "Failed":
        return 1, f"study {name} failed{_said(view.condition('Failed'))}"
    if phase == "Invalid":
        return 1, (f"study {name} is invalid{_said(view.condition('Stalled'))}; nothing runs "
                   "until its spec is fixed")
    if phase == "Suspended":
        resume = '{"spec":{"suspend":false}}'
        return EXIT_SUSPENDED, (
            f"study {name} is suspended (spec.suspend: true); nothing runs until it is resumed: "
            f"kubectl patch tuningstudy {name} --type merge -p '{resume}'")
    return None


def watch(source: Callable[[], StudyView], *, out: IO[str] | None = None, interval: float = 2.0,
          timeout: float | None = None, tty: bool | None = None, width: int = 100,
          clock: Callable[[], float] = time.time,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Show ``source()`` every ``interval`` seconds until the study has Succeeded (exit 0),
    Failed or is Invalid (exit 1), is Suspended (3), or ``timeout`` seconds have passed (124).
    Each ending says so in one line on stderr."""
    out = out or sys.stdout
    tty = out.isatty() if tty is None else tty
    start = clock()
    last: tuple | None = None
    problems = 0
    while True:
        try:
            view = source()
            problems = 0
        except NotFoundError as e:
            print(f"kubetune: {e}", file=sys.stderr)
            return 1
        except ClusterError as e:
            # The API server may restart or drop a connection; keep watching.
            problems += 1
            if problems in (1, 10):
                print(f"kubetune: {e}; retrying", file=sys.stderr)
            view = None
        now = clock()
        if view is not None:
            frame = render.watch_frame(view, now, width=width)
            if tty:
                out.write(_CLEAR + frame + "\n")
                out.flush()
            elif _signature(view) != last:
                out.write(frame + "\n\n")
                out.flush()
            last = _signature(view)
            end = ending(view)
            if end is not None:
                code, line = end
                print(f"kubetune: {line}", file=sys.stderr)
                return code
        if timeout is not None and now - start >= timeout:
            print(f"kubetune: the study has not ended after {timeout:g} s", file=sys.stderr)
            return EXIT_TIMEOUT
        sleep(interval)
