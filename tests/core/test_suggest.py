"""suggest(spec, trials, n): the pure entry point the operator calls."""

from __future__ import annotations

import json

import kubetune.core
import pytest
from kubetune.core import suggest
from kubetune.core.space import Space
from kubetune.core.spec import SpecError, parse_spec
from kubetune.core.trials import Trial, TrialState

JOB_TEMPLATE = {
    "spec": {
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "trainer", "image": "kubetune/trainer:0.1.0"}],
            }
        }
    }
}


def study(algorithm: dict | None = None, direction: str = "minimize") -> dict:
    spec = {
        "objective": {"metric": "val_loss", "direction": direction},
        "searchSpace": {
            "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
            "batch_size": {"type": "int", "low": 16, "high": 256, "step": 16},
            "optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
        },
        "jobTemplate": JOB_TEMPLATE,
    }
    if algorithm is not None:
        spec["algorithm"] = algorithm
    return spec


SPACE = Space.from_search_space(study()["searchSpace"])


def records(count: int) -> list[dict]:
    """A history as plain records, the way the kube layer could hand it over."""
    out = []
    for i, params in enumerate(suggest(study({"name": "sobol", "seed": 1}), [], count)):
        state = "Running" if i == count - 1 else "Succeeded"
        value = None if state == "Running" else 0.1 * i
        out.append({"params": params, "state": state, "value": value})
    return out


@pytest.mark.parametrize("name", ["random", "sobol", "auto"])
def test_proposes_n_new_admissible_params(name):
    history = records(6)
    out = suggest(study({"name": name, "seed": 3}), history, 4)
    assert len(out) == 4
    assert all(SPACE.contains(p) for p in out)
    keys = {SPACE.key(p) for p in out}
    assert len(keys) == 4
    assert not keys & {SPACE.key(r["params"]) for r in history}
    json.dumps(out)


def test_deterministic_and_seeded():
    spec, history = study({"name": "random", "seed": 5}), records(4)
    assert suggest(spec, history, 3) == suggest(spec, history, 3)
    assert suggest(spec, history, 3) != suggest(study({"name": "random", "seed": 6}), history, 3)


def test_no_seed_means_seed_zero():
    assert suggest(study({"name": "sobol"}), [], 2) == suggest(
        study({"name": "sobol", "seed": 0}), [], 2
    )


def test_default_algorithm_is_auto():
    history = records(3)
    assert suggest(study(), history, 2) == suggest(study({"name": "auto"}), history, 2)


def test_spec_model_and_trial_records_give_the_same_answer():
    spec, history = study({"name": "random", "seed": 2}), records(5)
    trials = [
        Trial(i, r["params"], TrialState(r["state"]), r["value"]) for i, r in enumerate(history)
    ]
    assert suggest(parse_spec(spec), trials, 3) == suggest(spec, history, 3)


def test_passes_direction_seed_and_history_to_the_sampler(monkeypatch):
    calls = []

    class Recorder:
        name = "recorder"

        def suggest(self, space, trials, n, *, minimize, seed):
            calls.append((space, trials, n, minimize, seed))
            return [{"lr": 1e-3, "batch_size": 32, "optimizer": "adam"}] * n

    history = records(3)
    monkeypatch.setattr(kubetune.core, "get_sampler", lambda name: Recorder())
    suggest(study({"name": "tpe", "seed": 9}, direction="maximize"), history, 2)
    space, trials, n, minimize, seed = calls[0]
    assert (space, n, minimize, seed) == (SPACE, 2, False, 9)
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2 + [TrialState.RUNNING]


def test_grid_returns_fewer_once_used_up():
    spec = study({"name": "grid"})
    spec["searchSpace"] = {"optimizer": {"type": "categorical", "values": ["adam", "sgd"]}}
    first = suggest(spec, [], 5)
    assert sorted(p["optimizer"] for p in first) == ["adam", "sgd"]
    done = [{"params": p, "state": "Succeeded", "value": 1.0} for p in first]
    assert suggest(spec, done, 1) == []


def test_zero_and_bad_counts():
    assert suggest(study(), [], 0) == []
    for n in (-1, 1.5, True):
        with pytest.raises(ValueError, match="n="):
            suggest(study(), [], n)


def test_invalid_spec_names_the_field():
    spec = study({"name": "bayes"})
    with pytest.raises(SpecError, match="algorithm"):
        suggest(spec, [], 1)
