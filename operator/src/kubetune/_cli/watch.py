"""``kubetune watch``: redraw a study's progress until it ends.

On a terminal each frame replaces the last; into a pipe or a file a frame is written only when
something a reader cares about changed (counts, best value, state, events), so a log of a
watch stays short.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

from kubetune._cli import render
from kubetune._cli.cluster import ClusterError, NotFoundError
from kubetune._cli.views import StudyView

__all__ = ["EXIT_TIMEOUT", "watch"]

EXIT_TIMEOUT = 124  # as timeout(1)
_CLEAR = "\x1b[H\x1b[2J"


def _signature(view: StudyView) -> tuple:
    best = view.best()
    return (view.state, view.message, tuple(sorted(view.counts().items())),
            None if best is None else (best.number, best.value),
            view.events[-1] if view.events else None)


def watch(source: Callable[[], StudyView], *, out: IO[str] | None = None, interval: float = 2.0,
          timeout: float | None = None, tty: bool | None = None, width: int = 100,
          clock: Callable[[], float] = time.time,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Show ``source()`` every ``interval`` seconds until the study has Succeeded (exit 0),
    Failed or Stalled on an invalid spec (exit 1), or ``timeout`` seconds have passed (124)."""
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
            if view.outcome is not None:
                return 0 if view.outcome == "Succeeded" else 1
            if view.is_true("Stalled"):
                # An invalid spec: nothing happens until someone edits it.
                stalled = view.condition("Stalled") or {}
                print(f"kubetune: the study is stalled: {stalled.get('message', '')}",
                      file=sys.stderr)
                return 1
        if timeout is not None and now - start >= timeout:
            print(f"kubetune: the study has not ended after {timeout:g} s", file=sys.stderr)
            return EXIT_TIMEOUT
        sleep(interval)
