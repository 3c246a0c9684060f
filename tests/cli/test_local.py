"""``kubetune run --local``: trial processes built like trial Jobs, read like trial pods, and
the operator's plan applied to them."""

from __future__ import annotations

import copy
import io
import json
import math
import sys
from pathlib import Path

import pytest
import yaml
from cli_cases import SPEC
from kubetune._cli import local
from kubetune._cli.journal import read_journal
from kubetune._cli.local import LocalTrial, trial_command, trial_objects
from kubetune.core import protocol
from kubetune.core import spec as specs
from kubetune.core.trials import TrialState
from kubetune.kube import jobs as builders
from kubetune.kube import observe as observing

STUDY = {"metadata": {"name": "demo", "namespace": "local", "uid": "0123456789abcdef"}}


def job_for(container: dict, params: dict | None = None, number: int = 4) -> dict:
    spec = copy.deepcopy(SPEC)
    spec["jobTemplate"]["spec"]["template"]["spec"]["containers"] = [container]
    return builders.build_trial_job(STUDY, specs.parse_spec(spec), number,
                                    params or {"x": 0.25, "lr": 0.01, "opt": "sgd"})


def test_trial_command_expands_vars_and_leaves_the_pod_out():
    job = job_for({"name": "t", "image": "busybox", "command": ["python", "-c"],
                   "args": ["print('$(KUBETUNE_PARAM_X) $(KUBETUNE_TRIAL) $(NOPE) $$(X)')"],
                   "env": [{"name": "MINE", "value": "opt=$(KUBETUNE_PARAM_OPT)"}]})
    argv, env, cwd = trial_command(job, {"HOME": "/h", "POD_NAME": "leaked"})
    assert argv == [sys.executable, "-c", "print('0.25 4 $(NOPE) $(X)')"]
    assert env["MINE"] == "opt=sgd"
    assert json.loads(env["KUBETUNE_PARAMS"]) == {"lr": 0.01, "opt": "sgd", "x": 0.25}
    assert env["KUBETUNE_METRIC"] == "loss" and env["KUBETUNE_STUDY"] == "demo"
    assert env["HOME"] == "/h"
    # Outside a pod the SDK prints its reports on stdout, which the runner reads.
    assert "POD_NAME" not in env and "POD_NAMESPACE" not in env
    assert cwd is None


def test_trial_command_maps_the_trainer_image_to_its_module():
    job = job_for({"name": "t", "image": "registry.example:5000/kubetune/trainer:0.1.0",
                   "args": ["toy", "quadratic"], "workingDir": "/tmp"})
    argv, _, cwd = trial_command(job, {})
    assert argv == [sys.executable, "-m", "kubetune_trainer", "toy", "quadratic"]
    assert cwd == "/tmp"


def test_an_image_without_a_local_entrypoint_needs_a_command():
    job = job_for({"name": "t", "image": "pytorch/pytorch:2.5", "args": ["train.py"]})
    with pytest.raises(ValueError, match=r"a local run pulls no images.*give the container a"):
        trial_command(job, {})


def observed(trial: LocalTrial):
    job, pod = trial_objects(trial)
    return observing.observe([job], [pod], observing.Reader("loss", True))


def local_trial(**kw) -> LocalTrial:
    job = job_for({"name": "t", "image": "kubetune/trainer"}, number=0)
    return LocalTrial(0, {"x": 0.25}, job, start=1000.0, **kw)


def test_a_finished_trial_reads_as_the_operator_reads_its_pod():
    t = local_trial(exit_code=0, end=1003.0)
    for step, v in ((1, 0.9), (2, 0.4)):
        t.metrics_text = protocol.encode_metrics(step, {"loss": v}, final=step == 2)
        t.curve = protocol.append_point(t.curve, step, v, minimize=True)
    seen = observed(t)
    (trial,) = seen.trials
    assert trial.state is TrialState.SUCCEEDED and trial.value == 0.4
    assert trial.curve == ((1, 0.9), (2, 0.4))
    assert trial.start_time == 1000.0 and trial.end_time == 1003.0
    assert seen.to_record[0].state is TrialState.SUCCEEDED


@pytest.mark.parametrize(("kw", "reason"), [
    ({"exit_code": 3, "end": 1001.0}, "ExitCode"),
    ({"exit_code": 0, "end": 1001.0, "metrics_text": '{"step": 1, "metrics": {'}, "MetricInvalid"),
    ({"exit_code": 0, "end": 1001.0}, "MetricMissing"),
    ({"exit_code": 0, "end": 1001.0,
      "metrics_text": '{"step":1,"metrics":{"loss":NaN},"final":true}'}, "MetricNotFinite"),
])
def test_a_failed_trial_gets_the_operators_reason(kw, reason):
    t = local_trial(**kw)
    t.tail.extend(["Traceback (most recent call last):", "ValueError: boom"])
    (trial,) = observed(t).trials
    assert trial.state is TrialState.FAILED and trial.reason == reason
    if reason == "ExitCode":
        assert "exited with code 3" in trial.message and "ValueError: boom" in trial.message


def test_a_running_trial_is_running_with_its_last_value():
    t = local_trial(metrics_text=protocol.encode_metrics(2, {"loss": 0.5}),
                    curve=[(1, 0.8), (2, 0.5)])
    t.proc = object()  # type: ignore[assignment]
    (trial,) = observed(t).trials
    assert trial.state is TrialState.RUNNING and trial.value == 0.5


def write_study(tmp_path: Path, args: list[str], **spec_changes) -> Path:
    spec = copy.deepcopy(SPEC)
    spec["searchSpace"] = {"x1": {"type": "float", "low": -2.0, "high": 2.0}}
    spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] = args
    spec.update(spec_changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "kubetune.dev/v1alpha1", "kind": "TuningStudy",
                                    "metadata": {"name": "demo"}, "spec": spec}))
    return path


def results_of(journal: Path) -> dict[int, protocol.TrialResult]:
    return {n: r.result for n, r in read_journal(journal).results.items()}


def test_early_stopping_terminates_hopeless_trials(tmp_path):
    # Odd trials of `toy curves` are hopeless; the median rule stops them at step 2 of 12.
    path = write_study(tmp_path, ["toy", "curves", "--steps", "12", "--sleep", "0.15"],
                       budget={"maxTrials": 6, "parallelism": 3},
                       earlyStopping={"name": "median", "minStep": 2})
    out = io.StringIO()
    journal = tmp_path / "j.jsonl"
    assert local.run_local(path, parallel=None, journal_path=journal, out=out) == 0
    results = results_of(journal)
    assert sorted(results) == list(range(6))
    pruned = {n for n, r in results.items() if r.state is TrialState.PRUNED}
    assert pruned and pruned <= {1, 3, 5}
    for n in pruned:
        assert results[n].reason == "EarlyStopped" and results[n].step < 12
        reports = [line for line in (tmp_path / "j.logs" / f"trial-{n}.log").read_text()
                   .splitlines() if line.startswith("{")]
        assert len(reports) < 12, "the pruned trial's process was terminated"
    assert all(results[n].state is TrialState.SUCCEEDED for n in (0, 2, 4))
    text = out.getvalue()
    assert "Pruned" in text and "study demo Succeeded: MaxTrialsReached" in text
    assert text.rstrip().splitlines()[-7].split()[:4] == ["RANK", "TRIAL", "LOSS", "STATE"]


def test_failures_end_the_study_and_parallel_caps_the_trials(tmp_path):
    path = write_study(tmp_path, ["toy", "fail", "--exit-code", "3"],
                       budget={"maxTrials": 10, "parallelism": 4, "maxFailedTrials": 1})
    journal = tmp_path / "j.jsonl"
    out = io.StringIO()
    assert local.run_local(path, parallel=1, journal_path=journal, out=out) == 1
    results = results_of(journal)
    # One at a time: the second failure ends it before a third trial starts.
    assert sorted(results) == [0, 1]
    assert all(r.state is TrialState.FAILED and r.reason == "ExitCode" for r in results.values())
    assert "exited with code 3" in results[0].message
    assert "TooManyFailedTrials" in out.getvalue()


def test_a_journal_for_another_search_space_is_refused(tmp_path):
    path = write_study(tmp_path, ["toy", "quadratic"], budget={"maxTrials": 1, "parallelism": 1})
    journal = tmp_path / "j.jsonl"
    assert local.run_local(path, parallel=None, journal_path=journal, out=io.StringIO()) == 0
    changed = write_study(tmp_path, ["toy", "quadratic"], budget={"maxTrials": 2,
                                                                  "parallelism": 1},
                          searchSpace={"x9": {"type": "float", "low": 0.0, "high": 1.0}})
    with pytest.raises(ValueError, match=r"spec\.searchSpace differs"):
        local.run_local(changed, parallel=None, journal_path=journal, out=io.StringIO())


def test_a_larger_budget_resumes_a_finished_study(tmp_path):
    path = write_study(tmp_path, ["toy", "quadratic"], budget={"maxTrials": 2, "parallelism": 2})
    journal = tmp_path / "j.jsonl"
    assert local.run_local(path, parallel=None, journal_path=journal, out=io.StringIO()) == 0
    first = results_of(journal)
    path = write_study(tmp_path, ["toy", "quadratic"], budget={"maxTrials": 3, "parallelism": 2})
    out = io.StringIO()
    assert local.run_local(path, parallel=None, journal_path=journal, out=out) == 0
    again = results_of(journal)
    assert sorted(again) == [0, 1, 2]
    assert {n: again[n] for n in first} == first
    assert "resuming: 2 trials done" in out.getvalue()
    assert "trial 2 started" in out.getvalue()


PRINTING = ("import os; x = float(os.environ['KUBETUNE_PARAM_X1'])\n"
            "for epoch in (1, 2): print(f'epoch {epoch} loss={(x - 0.5) ** 2 + 1 / epoch}')\n")


def test_a_script_that_only_prints_its_metric_runs_locally_from_its_log(tmp_path):
    path = write_study(tmp_path, [], budget={"maxTrials": 3, "parallelism": 2},
                       metricsFrom={"log": {
                           "pattern": r"epoch (?P<step>\d+) loss=(?P<value>[0-9.e+-]+)"}})
    study = yaml.safe_load(path.read_text())
    study["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].update(
        command=[sys.executable, "-c", PRINTING], args=[])
    path.write_text(yaml.safe_dump(study))
    journal = tmp_path / "j.jsonl"
    assert local.run_local(path, parallel=None, journal_path=journal, out=io.StringIO()) == 0
    state = read_journal(journal)
    assert sorted(state.results) == [0, 1, 2]
    for n, rec in state.results.items():
        x = state.trials[n]["x1"]
        assert rec.result.state is TrialState.SUCCEEDED and rec.result.step == 2
        assert rec.result.value == pytest.approx((x - 0.5) ** 2 + 0.5)


def test_a_termination_message_study_is_refused_locally_with_what_to_do(tmp_path):
    path = write_study(tmp_path, ["toy", "quadratic"], metricsFrom={"terminationMessage": {}},
                       earlyStopping=None)
    with pytest.raises(local.StudyFileError, match=r"metricsFrom\.terminationMessage.*use "
                                                   r"metricsFrom\.log or kubetune\.sdk"):
        local.run_local(path, parallel=None, journal_path=tmp_path / "j.jsonl",
                        out=io.StringIO())


def test_a_local_study_warm_starts_from_an_earlier_local_studys_journal(tmp_path):
    from kubetune import core
    from kubetune.core import warm_start as warm
    from kubetune.core.trials import Trial

    before = write_study(tmp_path, ["toy", "quadratic"], earlyStopping=None,
                         budget={"maxTrials": 5, "parallelism": 1},
                         algorithm={"name": "random", "seed": 2})
    assert local.run_local(before, parallel=None, journal_path=tmp_path / "demo.jsonl",
                           out=io.StringIO()) == 0
    done = read_journal(tmp_path / "demo.jsonl")
    after = write_study(tmp_path, ["toy", "quadratic"], earlyStopping=None,
                        budget={"maxTrials": 1, "parallelism": 1},
                        algorithm={"name": "gp", "seed": 4}, warmStart={"studies": ["demo"]})
    journal = tmp_path / "after.jsonl"
    assert local.run_local(after, parallel=None, journal_path=journal, out=io.StringIO()) == 0
    spec = specs.parse_spec(yaml.safe_load(after.read_text())["spec"])
    prior = warm.prior_history(spec, [warm.PriorStudy("demo", "loss", "minimize", tuple(
        Trial(number=n, params=done.trials[n], state=r.result.state, value=r.result.value)
        for n, r in sorted(done.results.items())))])
    assert len(prior.trials) == 5
    assert read_journal(journal).trials[0] == core.suggest(spec, list(prior.trials), 1)[0]


def test_the_printed_metric_example_runs_locally_from_its_log(tmp_path):
    example = Path(__file__).resolve().parents[2] / "examples" / "printed-metric.yaml"
    study = yaml.safe_load(example.read_text())
    # A local run has no image: the example's `python` is this machine's; shorter epochs.
    container = study["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "-c"]
    container["args"] = [container["args"][0].replace("time.sleep(2.0)", "time.sleep(0.05)")]
    path = tmp_path / "printed.yaml"
    path.write_text(yaml.safe_dump(study))
    journal = tmp_path / "j.jsonl"
    assert local.run_local(path, parallel=None, journal_path=journal, out=io.StringIO()) == 0
    state = read_journal(journal)
    counted = [n for n, r in state.results.items()
               if r.result.state in (TrialState.SUCCEEDED, TrialState.PRUNED)]
    assert len(counted) == 12
    for n in counted:
        p, result = state.trials[n], state.results[n].result
        assert ("momentum" in p) == (p["optimizer"] == "sgd")
        best_lr = -3.0 if p["optimizer"] == "adam" else -1.5
        floor = 0.01 + (math.log10(p["lr"]) - best_lr) ** 2 / 10
        floor += (p["momentum"] - 0.9) ** 2 if "momentum" in p else 0.0
        # The value is the last line read: epoch 9 for a finished trial, earlier if pruned.
        assert result.value == pytest.approx(floor + 1.0 / result.step ** 2, abs=1e-6)
        assert result.step == 9 or result.state is TrialState.PRUNED
