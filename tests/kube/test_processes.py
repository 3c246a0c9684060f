"""kube.processes: a pid is alive while its process runs, and not once it has exited."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from kubetune.kube.processes import pid_alive


def test_a_running_process_is_alive():
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()


def test_an_exited_child_is_not_alive_before_or_after_it_is_reaped():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        time.sleep(0.01)  # exited, not reaped: a zombie
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)


def test_no_pid_is_not_alive():
    assert not pid_alive(None)
    assert not pid_alive(0)
