"""The command line: arguments, exit statuses, the watch loop, and get/watch/plot of a local
run's journal."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
import yaml
from cli_cases import SPEC, mixed_trials, study_view, trial
from kubetune import cli
from kubetune._cli import watch as watching
from kubetune._cli.cluster import ClusterError, NotFoundError

RUNNING = [{"type": "Ready", "status": "True", "reason": "Running", "message": "going"}]
DONE = [{"type": "Ready", "status": "True", "reason": "MaxTrialsReached", "message": "done"},
        {"type": "Succeeded", "status": "True", "reason": "MaxTrialsReached", "message": "done"}]
FAILED = [{"type": "Ready", "status": "False", "reason": "TooManyFailedTrials", "message": "x"},
          {"type": "Failed", "status": "True", "reason": "TooManyFailedTrials", "message": "x"}]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_watch(views: list, *, tty: bool = False, timeout: float | None = None):
    out, clock = io.StringIO(), Clock()
    queue = list(views)

    def source():
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    code = watching.watch(source, out=out, interval=1.0, timeout=timeout, tty=tty,
                          clock=clock, sleep=clock.sleep)
    return code, out.getvalue()


def test_watch_writes_a_frame_per_change_and_exits_when_the_study_succeeds():
    first = study_view(mixed_trials()[:3], conditions=RUNNING)
    second = study_view(mixed_trials()[:5], conditions=RUNNING)
    last = study_view([*mixed_trials()[:7], trial(7, "Succeeded", 0.1)], conditions=DONE)
    code, out = run_watch([first, first, second, ClusterError("connection reset"), last])
    assert code == 0
    assert out.count("Study demo (namespace team-a)") == 3  # the repeat of `first` is skipped
    assert out.rstrip().split("Study demo")[-1].startswith(" (namespace team-a): MaxTrialsReached")
    assert "best loss 0.1 (trial 7" in out


def test_watch_exit_statuses():
    assert run_watch([study_view([], conditions=FAILED)])[0] == 1
    code, _ = run_watch([study_view([], conditions=RUNNING)], timeout=5)
    assert code == watching.EXIT_TIMEOUT
    assert run_watch([NotFoundError("TuningStudy 'demo' not found")])[0] == 1
    stalled = [{"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "no"}]
    assert run_watch([study_view([], conditions=stalled)])[0] == 1


SUSPENDED = [{"type": "Ready", "status": "True", "reason": "Suspended", "message": "paused"},
             {"type": "Suspended", "status": "True", "reason": "SpecSuspended",
              "message": "spec.suspend is true"}]


def _with_phase(phase: str, conditions: list[dict]):
    view = study_view([], conditions=conditions)
    return dataclasses.replace(view, status={**view.status, "phase": phase})


def test_watch_ends_on_a_suspended_study_with_a_line_that_says_how_to_resume(capsys):
    code, _ = run_watch([study_view([], conditions=SUSPENDED)], timeout=600)
    assert code == watching.EXIT_SUSPENDED
    err = capsys.readouterr().err
    assert "study demo is suspended" in err
    assert "kubectl patch tuningstudy demo" in err


@pytest.mark.parametrize(("phase", "code", "words"), [
    ("Succeeded", 0, "study demo succeeded"),
    ("Failed", 1, "study demo failed"),
    ("Invalid", 1, "study demo is invalid"),
    ("Suspended", watching.EXIT_SUSPENDED, "study demo is suspended"),
])
def test_watch_reads_the_phase_when_the_operator_writes_it(phase, code, words, capsys):
    # The phase decides, even where the conditions (here: still running) lag behind it.
    assert run_watch([_with_phase(phase, RUNNING)], timeout=600)[0] == code
    assert words in capsys.readouterr().err


def test_watch_goes_on_while_the_phase_says_running(capsys):
    code, _ = run_watch([_with_phase("Running", SUSPENDED), _with_phase("Pending", RUNNING)],
                        timeout=5)
    assert code == watching.EXIT_TIMEOUT


def test_watch_ending_lines_name_the_reason(capsys):
    assert run_watch([study_view([], conditions=FAILED)])[0] == 1
    assert "study demo failed: TooManyFailedTrials - x" in capsys.readouterr().err


def test_watch_on_a_terminal_redraws_in_place():
    _, out = run_watch([study_view([], conditions=RUNNING), study_view([], conditions=DONE)],
                       tty=True)
    assert out.count("\x1b[H\x1b[2J") == 2


def test_usage_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "study.yaml"])  # --local is required
    assert exit_info.value.code == 2
    assert cli.main(["plot", "--journal", str(tmp_path / "j"), "-o", "r.txt"]) == 2
    assert "write a .html or a .png file" in capsys.readouterr().err
    assert cli.main(["watch"]) == 2
    assert cli.main(["run", "x.yaml", "--local", "--parallel", "0"]) == 2


def test_errors_are_one_line_with_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert cli.main(["get"]) == 1
    assert "no kubeconfig there; point KUBECONFIG at one" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("kind: ConfigMap\nmetadata: {name: x}\n")
    assert cli.main(["run", str(tmp_path / "bad.yaml"), "--local"]) == 1
    assert "no document of kind TuningStudy" in capsys.readouterr().err
    spec = {**SPEC, "budget": {"maxTrials": 2, "parallelism": 5}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"kind": "TuningStudy",
                                                     "metadata": {"name": "s"}, "spec": spec}))
    assert cli.main(["run", str(tmp_path / "s.yaml"), "--local"]) == 1
    assert "parallelism" in capsys.readouterr().err


@pytest.fixture(scope="module")
def finished_journal(tmp_path_factory) -> Path:
    """A local run of 4 quadratic trials, finished."""
    where = tmp_path_factory.mktemp("run")
    spec = json.loads(json.dumps(SPEC))
    spec["budget"] = {"maxTrials": 4, "parallelism": 2}
    del spec["earlyStopping"]
    path = where / "study.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "kubetune.dev/v1alpha1",
                                    "kind": "TuningStudy", "metadata": {"name": "quad"},
                                    "spec": spec}, sort_keys=False))
    journal = where / "quad.jsonl"
    assert cli.main(["run", str(path), "--local", "--journal", str(journal)]) == 0
    return journal


def test_get_watch_and_plot_a_journal(finished_journal, tmp_path, capsys):
    capsys.readouterr()
    assert cli.main(["get", "--journal", str(finished_journal)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Study quad: MaxTrialsReached")
    table = text.split("\n\n", 1)[1].splitlines()
    assert table[0].split() == ["RANK", "TRIAL", "LOSS", "STATE", "x", "lr", "opt", "DURATION"]
    assert [row.split()[0] for row in table[1:]] == ["1", "2", "3", "4"]

    assert cli.main(["get", "--journal", str(finished_journal), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["rank"] for t in data["trials"]] == [1, 2, 3, 4]
    values = [t["value"] for t in data["trials"]]
    assert values == sorted(values)

    assert cli.main(["watch", "--journal", str(finished_journal), "--interval", "0"]) == 0
    assert "4/4 (100%)" in capsys.readouterr().out

    report = tmp_path / "out" / "report.html"
    assert cli.main(["plot", "--journal", str(finished_journal), "-o", str(report)]) == 0
    html = report.read_text()
    figs = json.loads(html.split('id="kubetune-figures">', 1)[1].split("</script>", 1)[0])
    assert sum(len(t["x"]) for t in figs["history"]["data"] if t["mode"] == "markers") == 4
