"""TuningStudy spec and status models: what they accept, what they refuse and how they say so."""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubetune.core.space import CategoricalParam, FloatParam, IntParam
from kubetune.core.spec import (
    SpecError,
    StudySpec,
    StudyStatus,
    minimize,
    parse_spec,
    space_of,
)
from pydantic import ValidationError

DESIGN_EXAMPLE = yaml.safe_load(
    """
objective: {metric: val_loss, direction: minimize, goal: 0.05}
searchSpace:
  lr:         {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
  batch_size: {type: int, low: 16, high: 256, log: true}
  dropout:    {type: float, low: 0.0, high: 0.5}
  optimizer:  {type: categorical, values: [adam, sgd, adamw]}
algorithm: {name: auto, seed: 7}
earlyStopping: {name: asha, minStep: 1, maxStep: 27, reductionFactor: 3}
budget: {maxTrials: 40, parallelism: 4, maxFailedTrials: 5, trialTimeoutSeconds: 3600}
suspend: false
jobTemplate:
  spec:
    backoffLimit: 0
    template:
      spec:
        restartPolicy: Never
        containers:
        - name: trainer
          image: kubetune/trainer:0.1.0
          args: ["--lr=$(KUBETUNE_PARAM_LR)"]
          resources: {limits: {nvidia.com/gpu: 1}}
"""
)
MINIMAL = {
    "objective": {"metric": "loss", "direction": "minimize"},
    "searchSpace": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t"}]}}}},
}


def edited(base: dict, **changes: Any) -> dict:
    """``base`` with ``a__b__c=value`` set (``...`` deletes the key)."""
    out = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return out


def problems_of(spec: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert str(info.value) == "\n".join(info.value.problems)
    return list(info.value.problems)


def test_design_example_is_accepted():
    spec = parse_spec(DESIGN_EXAMPLE)
    assert spec.objective.goal == 0.05
    assert spec.algorithm.seed == 7
    assert spec.early_stopping is not None
    assert spec.early_stopping.max_step == 27
    assert spec.budget.parallelism == 4
    assert spec.budget.trial_timeout_seconds == 3600
    assert minimize(spec)
    space = space_of(spec)
    assert space.names == ("lr", "batch_size", "dropout", "optimizer")
    assert space.params[1] == IntParam("batch_size", 16, 256, log=True)
    assert space.params[3] == CategoricalParam("optimizer", ("adam", "sgd", "adamw"))


def test_defaults_live_in_the_models():
    spec = parse_spec(MINIMAL)
    assert spec.algorithm.name == "auto"
    assert spec.algorithm.seed is None
    assert spec.budget.max_trials == 20
    assert spec.budget.parallelism == 1
    assert spec.budget.max_failed_trials == 5
    assert spec.budget.trial_timeout_seconds is None
    assert spec.early_stopping is None
    assert spec.suspend is False
    asha = parse_spec(edited(MINIMAL, earlyStopping={"name": "asha"})).early_stopping
    assert (asha.min_step, asha.max_step, asha.reduction_factor) == (1, None, 3)
    assert (
        parse_spec(edited(MINIMAL, earlyStopping={"name": "median"})).early_stopping.min_trials == 5
    )
    schema = StudySpec.model_json_schema()
    budget = schema["$defs"]["BudgetSpec"]["properties"]
    assert budget["maxTrials"]["default"] == 20
    assert budget["parallelism"]["default"] == 1


def test_snake_case_names_and_models_are_accepted_too():
    spec = parse_spec(DESIGN_EXAMPLE)
    snake = spec.model_dump()
    assert "search_space" in snake
    assert "job_template" in snake
    assert parse_spec(snake) == spec
    assert parse_spec(spec) is spec
    assert StudySpec.model_validate(DESIGN_EXAMPLE) == spec


def test_stepped_float_space_and_maximize():
    spec = parse_spec(
        edited(
            MINIMAL,
            objective__direction="maximize",
            searchSpace__x={"type": "float", "low": 0.0, "high": 0.3, "step": 0.1},
            algorithm={"name": "grid"},
        )
    )
    assert not minimize(spec)
    assert space_of(spec).params[0] == FloatParam("x", 0.0, 0.3, step=0.1)
    assert space_of(spec).size == 4


REFUSED = [
    # (what is changed, the path the message must name, words it must contain)
    ({"searchSpace__x__low": 2.0}, "spec.searchSpace.x.low", "below high"),
    ({"searchSpace__x__high": 0.0}, "spec.searchSpace.x.low", "below high"),
    ({"searchSpace__x__log": True}, "spec.searchSpace.x.low", "above 0"),
    ({"searchSpace__x__step": 0.3}, "spec.searchSpace.x.step", "does not divide"),
    (
        {"searchSpace__x": {"type": "int", "low": 0, "high": 10, "step": 3}},
        "spec.searchSpace.x.step",
        "does not divide",
    ),
    (
        {"searchSpace__x": {"type": "float", "low": 1, "high": 2, "log": True, "step": 0.5}},
        "spec.searchSpace.x.step",
        "log",
    ),
    (
        {"searchSpace__x": {"type": "int", "low": 1, "high": 64, "log": True, "step": 2}},
        "spec.searchSpace.x.step",
        "log",
    ),
    (
        {"searchSpace__x": {"type": "int", "low": 1.5, "high": 4}},
        "spec.searchSpace.x.low",
        "whole number",
    ),
    (
        {"searchSpace__x": {"type": "categorical", "values": []}},
        "spec.searchSpace.x.values",
        "at least 1",
    ),
    (
        {"searchSpace__x": {"type": "categorical", "values": ["a", "b", "a"]}},
        "spec.searchSpace.x.values[2]",
        "repeats values[0]",
    ),
    (
        {"searchSpace__x": {"type": "categorical", "values": [1, 1.0]}},
        "spec.searchSpace.x.values[1]",
        "repeats",
    ),
    ({"searchSpace__x": {"type": "categorical"}}, "spec.searchSpace.x.values", "required"),
    (
        {"searchSpace__x": {"type": "categorical", "values": ["a"], "low": 0}},
        "spec.searchSpace.x.low",
        "not used",
    ),
    ({"searchSpace__x": {"type": "float", "low": 0}}, "spec.searchSpace.x.high", "required"),
    (
        {"searchSpace__x": {"type": "float", "low": 0, "high": 1, "values": [1]}},
        "spec.searchSpace.x.values",
        "only categorical",
    ),
    ({"searchSpace__x": {"type": "bool"}}, "spec.searchSpace.x.type", "'float'"),
    ({"algorithm": {"name": "bayes"}}, "spec.algorithm.name", "'tpe'"),
    ({"earlyStopping": {"name": "hyperband"}}, "spec.earlyStopping.name", "'asha'"),
    ({"budget": {"maxTrials": 4, "parallelism": 5}}, "spec.budget.parallelism", "maxTrials"),
    ({"budget": {"maxTrials": 0}}, "spec.budget.maxTrials", ">= 1"),
    ({"algorithm": {"name": "grid"}}, "spec.searchSpace.x.step", "grid"),
    ({"searchSpace__x__low": math.nan}, "spec.searchSpace.x.low", "finite"),
    ({"searchSpace__x__high": math.inf}, "spec.searchSpace.x.high", "finite"),
    ({"objective__goal": math.nan}, "spec.objective.goal", "finite"),
    ({"objective__goal": -math.inf}, "spec.objective.goal", "finite"),
    (
        {"searchSpace": {"bad name": {"type": "float", "low": 0, "high": 1}}},
        "spec.searchSpace['bad name']",
        "parameter name",
    ),
    (
        {"searchSpace": {"1x": {"type": "float", "low": 0, "high": 1}}},
        "spec.searchSpace['1x']",
        "environment variable",
    ),
    (
        {"searchSpace": {"x" * 64: {"type": "float", "low": 0, "high": 1}}},
        "spec.searchSpace.xxxx",
        "parameter name",
    ),
    (
        {
            "searchSpace": {
                "batch-size": {"type": "int", "low": 1, "high": 4},
                "batch_size": {"type": "int", "low": 1, "high": 4},
            }
        },
        "spec.searchSpace.batch_size",
        "KUBETUNE_PARAM_BATCH_SIZE",
    ),
    (
        {
            "searchSpace": {
                "lr": {"type": "float", "low": 0, "high": 1},
                "LR": {"type": "float", "low": 0, "high": 1},
            }
        },
        "spec.searchSpace.LR",
        "same variable",
    ),
    ({"searchSpace": {}}, "spec.searchSpace", "at least 1"),
    (
        {"searchSpace": {f"p{i}": {"type": "float", "low": 0, "high": 1} for i in range(65)}},
        "spec.searchSpace",
        "limit of 64",
    ),
    (
        {"searchSpace__x": {"type": "categorical", "values": list(range(257))}},
        "spec.searchSpace.x.values",
        "limit of 256",
    ),
    (
        {"searchSpace__x": {"type": "categorical", "values": ["v" * 257]}},
        "spec.searchSpace.x.values[0]",
        "256 characters",
    ),
    (
        {"searchSpace__x": {"type": "categorical", "values": [None]}},
        "spec.searchSpace.x.values[0]",
        "string, a number or a boolean",
    ),
    ({"objective__metric": "m" * 129}, "spec.objective.metric", "128 characters"),
    (
        {"earlyStopping": {"name": "asha", "minStep": 9, "maxStep": 9}},
        "spec.earlyStopping.minStep",
        "below maxStep",
    ),
    ({"earlyStopping": {"name": "asha", "minStep": 0}}, "spec.earlyStopping.minStep", "asha"),
    (
        {"earlyStopping": {"name": "asha", "reductionFactor": 1}},
        "spec.earlyStopping.reductionFactor",
        ">= 2",
    ),
    (
        {"jobTemplate__spec__ttlSecondsAfterFinished": 60},
        "spec.jobTemplate.spec.ttlSecondsAfterFinished",
        "not allowed",
    ),
    ({"jobTemplate": {"template": {"spec": {}}}}, "spec.jobTemplate.template", "JobTemplateSpec"),
    (
        {"jobTemplate__spec__template": {"spec": {"containers": []}}},
        "spec.jobTemplate.spec.template.spec.containers",
        "at least one container",
    ),
    ({"jobTemplate": ...}, "spec.jobTemplate", "required"),
    ({"objective": ...}, "spec.objective", "give exactly one of objective and objectives"),
    ({"objective__direction": "up"}, "spec.objective.direction", "'maximize'"),
    ({"budget": {"maxTrails": 3}}, "spec.budget.maxTrails", "did you mean maxTrials"),
    ({"searchSpace__x__low": "0.5"}, "spec.searchSpace.x.low", "must be a number"),
    ({"suspend": "yes"}, "spec.suspend", "true or false"),
    ({"budget": {"trialTimeoutSeconds": 0}}, "spec.budget.trialTimeoutSeconds", ">= 1"),
    ({"algorithm": {"seed": -1}}, "spec.algorithm.seed", ">= 0"),
    ({"algorithm": {"seed": 2**53 + 1}}, "spec.algorithm.seed", "must be <= 9007199254740992"),
    (
        {"searchSpace__x": {"type": "float", "low": 1e15, "high": 2e15}},
        "spec.searchSpace.x.high",
        "<= 1000000000000000",
    ),
    (
        {"searchSpace__x": {"type": "float", "low": 1e6, "high": 1e6 + 1, "step": 1e-6}},
        "spec.searchSpace.x.step",
        "too small",
    ),
    (
        {"searchSpace__x": {"type": "int", "low": 0, "high": 10**14}},
        "spec.searchSpace.x.high",
        "more than",
    ),
    ({"searchSpace__m": {"type": "float", "low": 0.0, "high": 1.0, "when": {"nope": ["a"]}}},
     "spec.searchSpace.m.when.nope", "names no other parameter"),
    ({"searchSpace__m": {"type": "float", "low": 0.0, "high": 1.0, "when": {"x": [1]}}},
     "spec.searchSpace.m.when.x", "a condition needs a categorical one"),
    ({"searchSpace": {"o": {"type": "categorical", "values": ["a", "b"]},
                      "m": {"type": "float", "low": 0.0, "high": 1.0, "when": {"o": ["c"]}}}},
     "spec.searchSpace.m.when.o[0]", "is not one of o's values"),
    ({"searchSpace": {"o": {"type": "categorical", "values": ["a"], "when": {"p": ["x"]}},
                      "p": {"type": "categorical", "values": ["x"], "when": {"o": ["a"]}}}},
     "spec.searchSpace", "form a cycle"),
    ({"searchSpace": {"o": {"type": "categorical", "values": ["a", "b"]},
                      "m": {"type": "float", "low": 0.0, "high": 1.0, "when": {"o": ["a"]}}},
      "enqueue": [{"o": "b", "m": 0.5}]}, "spec.enqueue[0].m", "inactive"),
    ({"metricsFrom": {}}, "spec.metricsFrom", "exactly one of terminationMessage and log"),
    (
        {"metricsFrom": {"terminationMessage": {}, "log": {"pattern": "(?P<value>1)"}}},
        "spec.metricsFrom",
        "exactly one",
    ),
    ({"metricsFrom": {"log": {"pattern": "loss=(\\d+)"}}}, "spec.metricsFrom.log.pattern",
     "(?P<value>...)"),
    ({"metricsFrom": {"log": {"pattern": "loss=(?P<value>\\d+"}}},
     "spec.metricsFrom.log.pattern", "not a valid regular expression"),
    ({"metricsFrom": {"log": {"pattern": "(?P<epoch>\\d+) (?P<value>\\d+)"}}},
     "spec.metricsFrom.log.pattern", "['epoch']"),
    ({"metricsFrom": {"log": {"pattern": "(?P<value>1)", "container": "sidecar"}}},
     "spec.metricsFrom.log.container", "names no container"),
    (
        {"metricsFrom": {"terminationMessage": {}}, "earlyStopping": {"name": "median"}},
        "spec.metricsFrom.terminationMessage",
        "early stopping needs values while it runs",
    ),
    (
        {"metricsFrom": {"log": {"pattern": "loss=(?P<value>1)"}},
         "earlyStopping": {"name": "asha"}},
        "spec.metricsFrom.log.pattern",
        "(?P<step>...)",
    ),
]


@pytest.mark.parametrize(("change", "path", "words"), REFUSED)
def test_each_rule_is_refused_naming_the_field(change, path, words):
    lines = problems_of(edited(MINIMAL, **change))
    hits = [line for line in lines if line.startswith(path) and words in line]
    assert hits, lines
    for line in lines:
        # spec.<path>: <what is wrong> [(got <value>)]; <fix>
        assert re.fullmatch(r"spec[^:]*: [^;]+(?: \(got .+\))?; .+", line, re.S), line


def test_the_value_is_shown_with_the_problem():
    (line,) = problems_of(edited(MINIMAL, searchSpace__x__low=2.0))
    assert line == (
        "spec.searchSpace.x.low: must be below high (got low=2.0, high=1.0); "
        "make low the smaller bound"
    )
    (line,) = problems_of(edited(MINIMAL, algorithm={"name": "bayes"}))
    assert "(got 'bayes')" in line


def test_all_problems_are_reported_at_once():
    lines = problems_of(
        edited(
            MINIMAL,
            searchSpace__x__low=5.0,
            algorithm={"name": "bayes"},
            budget={"parallelism": 0},
            jobTemplate__spec__ttlSecondsAfterFinished=1,
        )
    )
    assert len(lines) == 4, lines


def test_direct_model_validation_applies_the_same_rules():
    with pytest.raises(ValidationError, match="below high"):
        StudySpec.model_validate(edited(MINIMAL, searchSpace__x__low=5.0))


def test_int_with_log_and_step_one_is_fine():
    spec = parse_spec(
        edited(
            MINIMAL, searchSpace__x={"type": "int", "low": 1, "high": 64, "log": True, "step": 1}
        )
    )
    assert space_of(spec).params[0] == IntParam("x", 1, 64, log=True)


def test_float_step_tolerance():
    # 0.3 / 0.1 == 2.9999999999999996: divides, within tolerance
    parse_spec(
        edited(MINIMAL, searchSpace__x={"type": "float", "low": 0.0, "high": 0.3, "step": 0.1})
    )
    parse_spec(
        edited(MINIMAL, searchSpace__x={"type": "float", "low": 0.1, "high": 0.7, "step": 0.2})
    )


@pytest.mark.parametrize(
    "obj",
    [
        ["not", "a", "mapping"],
        {"apiVersion": "kubetune.dev/v1alpha1", "kind": "TuningStudy", "spec": MINIMAL},
    ],
)
def test_wrong_objects_are_refused_with_a_fix(obj):
    lines = problems_of(obj)
    assert lines[0].startswith("spec:")
    assert ".spec" in lines[0]


@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_a_generated_valid_spec_always_parses_and_round_trips(data, spec_dicts):
    raw = data.draw(spec_dicts)
    spec = parse_spec(raw)
    assert parse_spec(json.loads(spec.model_dump_json(by_alias=True))) == spec
    assert space_of(spec).names == tuple(raw["searchSpace"])


def _walk(schema: dict, defs: dict, path: str, seen: set):
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            yield from _walk(defs[name], defs, path, seen | {name})
        return
    yield path, schema
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return  # schemaless to the CRD, and its variants with it
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key, [])):
            yield from _walk(sub, defs, f"{path}|{i}", seen)
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, defs, f"{path}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _walk(schema[key], defs, f"{path}[]", seen)
    assert "patternProperties" not in schema, f"{path}: a CRD schema cannot hold patternProperties"


@pytest.mark.parametrize("model", [StudySpec, StudyStatus])
def test_schema_bounds_every_list_string_and_number(model):
    schema = model.model_json_schema()
    unbounded = []
    for path, node in _walk(schema, schema.get("$defs", {}), model.__name__, set()):
        kind = node.get("type")
        if node.get("x-kubernetes-preserve-unknown-fields"):
            continue
        if kind == "string" and "enum" not in node and "const" not in node:
            ok = "maxLength" in node or node.get("format") == "date-time"
        elif kind == "array":
            ok = "maxItems" in node
        elif kind == "object" and "properties" not in node:
            ok = "maxProperties" in node
        elif kind in ("number", "integer"):
            ok = ("minimum" in node or "exclusiveMinimum" in node) and "maximum" in node
        else:
            ok = True
        if not ok:
            unbounded.append(path)
    assert not unbounded


def test_schema_carries_cel_rules_and_immutability():
    schema = StudySpec.model_json_schema()
    assert "x-kubernetes-validations" in schema["$defs"]["ParamSpec"]
    assert "x-kubernetes-validations" in schema["$defs"]["BudgetSpec"]
    assert schema["properties"]["objective"]["x-kubernetes-validations"][0]["rule"] == (
        "self == oldSelf"
    )
    assert schema["properties"]["jobTemplate"]["x-kubernetes-preserve-unknown-fields"]


STATUS = {
    "observedGeneration": 3,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "TrialsRunning",
            "message": "4 trials running",
            "lastTransitionTime": "2026-11-02T10:00:00Z",
            "observedGeneration": 3,
        }
    ],
    "trials": {"running": 4, "succeeded": 10, "pruned": 2, "total": 16},
    "nextTrial": 16,
    "bestTrial": {
        "number": 7,
        "value": 0.041,
        "params": {"lr": 0.003, "opt": "adam"},
        "job": "digits-mlp-a1b2c-7",
    },
    "leaderboard": [{"number": 7, "value": 0.041, "job": "digits-mlp-a1b2c-7"}],
    "startTime": "2026-11-02T09:00:00Z",
}


def test_status_round_trips_through_json():
    status = StudyStatus.model_validate(STATUS)
    assert status.trials.total == 16
    assert status.trials.failed == 0
    assert status.best_trial.params == {"lr": 0.003, "opt": "adam"}
    dumped = json.loads(status.model_dump_json(by_alias=True, exclude_none=True))
    assert dumped["conditions"][0]["lastTransitionTime"] == "2026-11-02T10:00:00Z"
    assert StudyStatus.model_validate(dumped) == status
    assert StudyStatus().model_dump(by_alias=True)["nextTrial"] == 0


def test_status_is_bounded():
    with pytest.raises(ValidationError, match="leaderboard"):
        StudyStatus.model_validate(edited(STATUS, leaderboard=[STATUS["leaderboard"][0]] * 11))
    with pytest.raises(ValidationError, match="reason"):
        StudyStatus.model_validate(
            edited(STATUS, conditions=[dict(STATUS["conditions"][0], reason="not camel")])
        )
    with pytest.raises(ValidationError, match="bestTrial"):
        StudyStatus.model_validate(edited(STATUS, bestTrial__value=math.nan))
    with pytest.raises(ValidationError, match="extra"):
        StudyStatus.model_validate(edited(STATUS, trials__unknown=1))
    big = edited(
        STATUS,
        leaderboard=[
            {
                "number": i,
                "value": 1.0 / (i + 1),
                "job": f"study-abcde-{i}",
                "params": {f"p{j}": 0.123456789 for j in range(8)},
            }
            for i in range(10)
        ],
    )
    assert len(StudyStatus.model_validate(big).model_dump_json(by_alias=True)) < 8 * 1024
