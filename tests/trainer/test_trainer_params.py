"""The trainer's hyperparameters: defaults, sources, refusals, and the documented tables."""

from __future__ import annotations

from pathlib import Path

import kubetune_trainer
import pytest
from kubetune_trainer import params

ROOT = Path(__file__).resolve().parents[2]


def test_every_parameter_has_a_default_that_parses_to_itself() -> None:
    defaults = params.parse_params({})
    assert defaults == {name: info.default for name, info in params.PARAMS.items()}
    assert params.parse_params(defaults) == defaults
    kinds = {info.group for info in params.PARAMS.values()}
    assert kinds == {"features", "architecture", "learning", "run"}


def test_the_three_kinds_of_decision_are_all_there() -> None:
    for name in ("rotation", "hflip", "shift", "normalize", "model", "depth", "width",
                 "activation", "dropout", "pooling", "lr", "optimizer", "momentum",
                 "weight_decay", "batch_size", "epochs", "lr_schedule"):
        assert name in params.PARAMS


def test_json_sets_values_and_flags_override_it() -> None:
    env = {"KUBETUNE_PARAMS": '{"lr": 0.01, "batch_size": 32, "optimizer": "sgd", '
                              '"hflip": true, "dropout": 0}'}
    got = params.params_from_env_and_argv(["--lr=0.5", "--batch-size", "16", "--no-hflip"], env)
    assert (got["lr"], got["batch_size"], got["optimizer"], got["hflip"]) == (0.5, 16, "sgd", False)
    assert got["dropout"] == 0.0
    assert isinstance(got["dropout"], float)
    assert got["epochs"] == params.PARAMS["epochs"].default


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--hflip"], True),
        (["--hflip", "false"], False),
        (["--hflip=yes"], True),
        (["--no-hflip"], False),
    ],
)
def test_boolean_flags(argv: list[str], expected: bool) -> None:
    assert params.params_from_env_and_argv(argv, {})["hflip"] is expected


def test_integral_floats_are_accepted_for_integers() -> None:
    assert params.parse_params({"batch_size": 64.0})["batch_size"] == 64
    assert params.parse_params({"epochs": "1e2"}, from_text=True)["epochs"] == 100


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"learning_rate": 0.1}, ["unknown parameter 'learning_rate'", "known parameters"]),
        ({"lr": "0.1"}, ["lr='0.1'", "a string where a number belongs"]),
        ({"lr": 0}, ["lr=0", "below the range", "(0, inf)"]),
        ({"lr": True}, ["boolean is not a number"]),
        ({"batch_size": 64.5}, ["batch_size=64.5", "not a whole number"]),
        ({"dropout": 1.0}, ["dropout=1.0", "above the range", "[0, 1)"]),
        ({"optimizer": "rmsprop"}, ["optimizer='rmsprop'", "sgd, adam, adamw"]),
        ({"model": 3}, ["model=3", "not a string"]),
        ({"hflip": "maybe"}, ["hflip='maybe'", "not a boolean"]),
        ({"epochs": 0}, ["epochs=0", "below the range"]),
        ({"lr": float("nan")}, ["not finite"]),
        ({"data": ""}, ["data=''", "empty"]),
    ],
)
def test_unknown_and_ill_typed_values_are_refused_with_the_name_and_the_fix(
    values: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(params.ParamError) as caught:
        params.parse_params(values)
    for word in words:
        assert word in str(caught.value)


def test_a_near_miss_is_named() -> None:
    with pytest.raises(params.ParamError, match="did you mean batch_size"):
        params.parse_params({"batchsize": 3})


@pytest.mark.parametrize(
    ("argv", "env", "words"),
    [
        (["--lr=abc"], {}, ["lr='abc'", "not a number"]),
        (["--lr"], {}, ["--lr needs a value"]),
        (["lr=0.1"], {}, ["unexpected argument 'lr=0.1'", "--name=value"]),
        (["--colour=red"], {}, ["unknown parameter 'colour'"]),
        ([], {"KUBETUNE_PARAMS": "{lr: 1}"}, ["KUBETUNE_PARAMS is not valid JSON"]),
        ([], {"KUBETUNE_PARAMS": "[1, 2]"}, ["must be a JSON object", "list"]),
        ([], {"KUBETUNE_PARAMS": '{"depth": 9}'}, ["depth=9", "[1, 8]"]),
    ],
)
def test_bad_flags_and_bad_environment_are_refused(
    argv: list[str], env: dict[str, str], words: list[str]
) -> None:
    with pytest.raises(params.ParamError) as caught:
        params.params_from_env_and_argv(argv, env)
    for word in words:
        assert word in str(caught.value)


def test_the_objective_must_be_a_reported_metric() -> None:
    assert params.objective_metric({}) == "val_loss"
    assert params.objective_metric({"KUBETUNE_METRIC": "val_accuracy"}) == "val_accuracy"
    with pytest.raises(params.ParamError, match=r"KUBETUNE_METRIC='f1'.*val_loss, val_accuracy"):
        params.objective_metric({"KUBETUNE_METRIC": "f1"})
    # The model's cost can be an objective too (several objectives watch one of them).
    assert params.objective_metric({"KUBETUNE_METRIC": "latency_ms"}) == "latency_ms"
    assert params.objective_metric({"KUBETUNE_METRIC": "params_count"}) == "params_count"


def test_the_documented_tables_match_the_parameters() -> None:
    assert params.text_table() in (kubetune_trainer.__doc__ or "")
    readme = (ROOT / "trainer-image" / "README.md").read_text()
    assert params.markdown_table() in readme
