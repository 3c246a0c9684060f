"""Toy objectives with known optima and the failure modes, in-process and as a command."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest
from kubetune_trainer import toys


class Reports:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, step: int | None = None, final: bool = False, **metrics: float) -> None:
        self.calls.append({"step": step, "final": final, **metrics})


def run(argv: list[str], **env: str) -> tuple[int, Reports]:
    reports = Reports()
    status = toys.main(argv, report=reports, environ=env)
    return status, reports


def test_quadratic_has_its_minimum_at_the_targets() -> None:
    assert toys.quadratic({"x": 0.5, "y": 0.5}) == 0.0
    assert toys.quadratic({"x": 0.0, "y": 1.5}) == pytest.approx(0.25 + 1.0)
    assert toys.quadratic({"x": 2.0}, {"x": 2.0}) == 0.0
    assert toys.quadratic({"opt": "adam", "flag": True}, {"opt": "sgd"}) == 1.0
    assert toys.quadratic({"opt": "sgd"}, {"opt": "sgd"}) == 0.0


def test_quadratic_reports_its_value_as_the_objective() -> None:
    status, reports = run(["quadratic"], KUBETUNE_PARAMS='{"x": 0.2, "y": 0.9}')
    assert status == 0
    assert reports.calls == [{"step": 1, "final": True, "val_loss": pytest.approx(0.25)}]


def test_quadratic_curve_ends_at_the_value_and_ranks_trials_alike_at_every_step() -> None:
    status, reports = run(["quadratic", "--steps", "4", "--target", "x=1", "--negate"],
                          KUBETUNE_PARAMS='{"x": 0.0}', KUBETUNE_METRIC="score")
    assert status == 0
    assert [c["step"] for c in reports.calls] == [1, 2, 3, 4]
    assert [c["final"] for c in reports.calls] == [False, False, False, True]
    assert [c["score"] for c in reports.calls] == pytest.approx([-1.75, -1.5, -1.25, -1.0])
    good, bad = toys.quadratic_curve(0.1, 5), toys.quadratic_curve(0.4, 5)
    assert all(g[1] < b[1] for g, b in zip(good, bad, strict=True))


def test_curves_make_odd_trials_hopeless() -> None:
    finals = {}
    for trial in range(4):
        status, reports = run(["curves"], KUBETUNE_PARAMS='{"x": 0.5}', KUBETUNE_TRIAL=str(trial))
        assert status == 0
        assert len(reports.calls) == 9
        values = [c["val_loss"] for c in reports.calls]
        assert values == sorted(values, reverse=True)  # still improving, never good enough
        finals[trial] = values
    for even, odd in ((0, 1), (2, 3)):
        assert finals[even][-1] < 1.0
        assert min(finals[odd]) > toys.HOPELESS_OFFSET  # worse at step 1 than ever a good one
        assert finals[odd][0] > finals[even][0] + 9


def test_fail_reports_its_steps_then_exits_with_the_code() -> None:
    status, reports = run(["fail", "--exit-code", "3", "--steps", "2"])
    assert status == 3
    assert [c["final"] for c in reports.calls] == [False, False]


def test_nan_and_silent() -> None:
    status, reports = run(["nan"])
    assert status == 0
    assert math.isnan(reports.calls[0]["val_loss"])
    assert reports.calls[0]["final"] is True
    status, reports = run(["silent"])
    assert (status, reports.calls) == (0, [])


def test_bad_params_json_is_refused() -> None:
    status, reports = run(["quadratic"], KUBETUNE_PARAMS="[1]")
    assert (status, reports.calls) == (2, [])


def _command(*argv: str, params: str = '{"x": 0.25}') -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POD_NAME", "KUBECONFIG")}
    env["KUBETUNE_PARAMS"] = params
    return subprocess.run([sys.executable, "-m", "kubetune_trainer", "toy", *argv], env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_toy_command_prints_reports_outside_a_pod_without_importing_torch() -> None:
    done = _command("quadratic", "--steps", "2")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines == [
        {"step": 1, "metrics": {"val_loss": 0.5625}, "final": False},
        {"step": 2, "metrics": {"val_loss": 0.0625}, "final": True},
    ]
    probe = ("import sys, runpy; sys.argv = ['x', 'toy', 'silent']\n"
             "try:\n    runpy.run_module('kubetune_trainer', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print('torch' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_the_failure_modes_as_commands() -> None:
    assert _command("fail", "--exit-code", "3").returncode == 3
    nan = _command("nan")
    assert nan.returncode == 0
    assert "NaN" in nan.stdout
    silent = _command("silent")
    assert (silent.returncode, silent.stdout) == (0, "")
    malformed = _command("malformed")
    assert malformed.returncode == 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.stdout)
