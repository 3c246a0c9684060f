"""Local processes that stand in for pods (devcluster's node agent, ``kubetune run --local``):
whether one is still alive.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["pid_alive"]


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists and is not a zombie.

    A zombie has exited: a child its parent has not reaped yet, or a Go process whose other
    threads still hold its sockets. Where there is no /proc (macOS), existing is enough.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc/self/stat").exists()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
