"""``kubetune run --local`` end to end: killed with -9 part-way, its trial processes die with
it, and running it again finishes the study from the journal (on examples/quadratic.yaml)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml
from kubetune._cli.journal import read_journal
from kubetune.core.trials import TrialState

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "quadratic.yaml"


def _as_in_a_terminal() -> None:
    # A shell starts a background job with SIGINT ignored, and Python then leaves it ignored;
    # the runner is started as a user at a terminal starts it, whatever ran these tests.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kubetune(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kubetune.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_as_in_a_terminal)


def processes_with(marker: str) -> list[int]:
    """Live processes with ``KUBETUNE_TEST_MARKER=marker`` (the runner's trials inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if f"KUBETUNE_TEST_MARKER={marker}".encode() in environ and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


def slow_study(tmp_path: Path) -> Path:
    study = yaml.safe_load(EXAMPLE.read_text())
    container = study["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["args"] += ["--steps", "100", "--sleep", "0.5"]  # 50 s each, unless stopped
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def start_slow_run(tmp_path: Path, marker: str) -> subprocess.Popen:
    """The slow study, once its 4 trials run (the runner and 4 trials carry ``marker``)."""
    env = {**os.environ, "KUBETUNE_TEST_MARKER": marker}
    runner = kubetune("run", str(slow_study(tmp_path)), "--local", "--journal",
                      str(tmp_path / "j.jsonl"), env=env)
    deadline = time.monotonic() + 30
    while len(processes_with(marker)) < 5:
        if runner.poll() is not None or time.monotonic() > deadline:
            runner.kill()
            raise AssertionError(runner.communicate()[0])
        time.sleep(0.1)
    return runner


def assert_no_process_left(marker: str) -> None:
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = processes_with(marker)
    for pid in left:  # never leave a trial behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert left == []


def test_trials_die_with_a_killed_runner(tmp_path):
    marker = uuid.uuid4().hex
    runner = start_slow_run(tmp_path, marker)
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=10)
    assert_no_process_left(marker)


def test_ctrl_c_stops_the_trials_and_keeps_the_journal(tmp_path):
    marker = uuid.uuid4().hex
    runner = start_slow_run(tmp_path, marker)
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=20)
    assert runner.returncode == 130, out
    assert "interrupted: run the same command again to resume" in out
    assert_no_process_left(marker)
    state = read_journal(tmp_path / "j.jsonl")
    assert state.unfinished == [0, 1, 2, 3] and state.finished is None


def test_kill_and_resume_the_example(tmp_path):
    journal = tmp_path / "quadratic.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    first = kubetune("run", str(EXAMPLE), "--local", "--journal", str(journal), env=env)
    try:
        deadline = time.monotonic() + 60
        while len(read_journal(journal).results) < 8:
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline, "no progress in 60 s"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        first.stdout.close()
    before = read_journal(journal)
    assert 8 <= len(before.results) < 30

    second = kubetune("run", str(EXAMPLE), "--local", "--journal", str(journal), env=env)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert f"resuming: {len(before.results)} trials done" in out
    for n in before.unfinished:
        assert f"trial {n} restarted" in out

    after = read_journal(journal)
    assert sorted(after.results) == list(range(30))
    assert all(r.result.state is TrialState.SUCCEEDED for r in after.results.values())
    # What the first run recorded stands, and no trial was started twice under new numbers.
    assert {n: after.results[n] for n in before.results} == before.results
    assert after.trials == {**before.trials, **after.trials} and len(after.trials) == 30
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sum(r["kind"] == "trial" for r in records) == 30
    assert records[-1]["kind"] == "finished" and records[-1]["reason"] == "MaxTrialsReached"
    # The known optimum is 0; 30 trials of auto get close, as they do in the cluster.
    best = min(r.result.value for r in after.results.values())
    assert best < 0.1
    assert "RANK  TRIAL" in out
