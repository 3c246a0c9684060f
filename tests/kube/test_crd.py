"""kube.crd: the TuningStudy CRD generated from kubetune.core.spec (docs/design.md section 2).

Checks what the API server would refuse or what would make CEL exceed its cost budget, without
an API server: the schema is structural, every string, list and map in .spec is bounded, the
names and printer columns are the designed ones, and the committed crds/tuningstudy.yaml is the
generator's output. Studies are validated with ``jsonschema``'s Draft 4 validator (OpenAPI v3.0
schemas are Draft 4 plus ``nullable``, which is translated first).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubetune.core import spec as specs
from kubetune.core.plan import decide
from kubetune.kube import crd, status

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "tuningstudy.yaml"

DESIGN_EXAMPLE = yaml.safe_load("""
apiVersion: kubetune.dev/v1alpha1
kind: TuningStudy
metadata: {name: digits-mlp}
spec:
  objective: {metric: val_loss, direction: minimize, goal: 0.05}   # goal optional
  searchSpace:                         # a map: name -> parameter
    lr:         {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
    batch_size: {type: int, low: 16, high: 256, log: true}         # or step: 16
    dropout:    {type: float, low: 0.0, high: 0.5}
    optimizer:  {type: categorical, values: [adam, sgd, adamw]}
  algorithm: {name: auto, seed: 7}     # auto | random | grid | sobol | tpe | gp | cmaes
  earlyStopping: {name: asha, minStep: 1, maxStep: 27, reductionFactor: 3}  # or median, or omitted
  budget: {maxTrials: 40, parallelism: 4, maxFailedTrials: 5, trialTimeoutSeconds: 3600}
  suspend: false
  jobTemplate:                         # a batch/v1 JobTemplateSpec, as in a CronJob
    spec:
      backoffLimit: 0
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: trainer
            image: kubetune/trainer:0.1.0
            args: ["--lr=$(KUBETUNE_PARAM_LR)"]   # Kubernetes' own $(VAR) expansion
            resources: {limits: {nvidia.com/gpu: 1}}
""")

# JSON Schema keywords that apiextensions.k8s.io/v1 refuses in a CRD schema, or that a
# structural schema may not use where we would put them.
FORBIDDEN = {
    "$ref",
    "$schema",
    "$defs",
    "id",
    "definitions",
    "dependencies",
    "additionalItems",
    "patternProperties",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "const",
    "examples",
    "propertyNames",
    "discriminator",
    "readOnly",
    "writeOnly",
}
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
FORMATS = {
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "date-time",
    "int32",
    "int64",
    "float",
    "double",
}


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return crd.crd()


@pytest.fixture(scope="module")
def version(definition: dict[str, Any]) -> dict[str, Any]:
    (only,) = definition["spec"]["versions"]
    return only


@pytest.fixture(scope="module")
def root(version: dict[str, Any]) -> dict[str, Any]:
    return version["schema"]["openAPIV3Schema"]


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path: ``.field``, ``[]`` for items, ``{}`` for map values."""
    yield path or ".", schema
    for key, child in (schema.get("properties") or {}).items():
        yield from nodes(child, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def openapi_to_jsonschema(schema: Any) -> Any:
    """OpenAPI v3.0 -> Draft 4: ``nullable: true`` lets null through; the rest is the same."""
    if isinstance(schema, list):
        return [openapi_to_jsonschema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: openapi_to_jsonschema(v)
        for k, v in schema.items()
        if k not in ("nullable", "default", "example")
    }
    if schema.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    translated = openapi_to_jsonschema(schema)
    jsonschema.Draft4Validator.check_schema(translated)
    return jsonschema.Draft4Validator(translated)


def errors(schema: dict[str, Any], obj: Any) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(schema).iter_errors(obj)
    ]


# ---- the committed file ---------------------------------------------------------------------


def test_committed_crd_matches_the_generator() -> None:
    assert CRD_FILE.read_text() == crd.crd_yaml(), (
        "crds/tuningstudy.yaml drifted from kubetune.core.spec: run `make crds` "
        "(python -m kubetune.kube.crd > crds/tuningstudy.yaml) and commit it"
    )


def test_make_crds_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^crds:", makefile, re.MULTILINE)


def test_yaml_is_the_crd(definition: dict[str, Any]) -> None:
    text = crd.crd_yaml()
    assert text.startswith("# Generated from kubetune.core.spec")
    assert yaml.safe_load(text) == definition


def test_generation_is_deterministic() -> None:
    assert crd.crd_yaml() == crd.crd_yaml()


# ---- names, version, columns ----------------------------------------------------------------


def test_names(definition: dict[str, Any]) -> None:
    assert definition["apiVersion"] == "apiextensions.k8s.io/v1"
    assert definition["metadata"]["name"] == "tuningstudies.kubetune.dev"
    spec = definition["spec"]
    assert spec["group"] == "kubetune.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "TuningStudy",
        "listKind": "TuningStudyList",
        "plural": "tuningstudies",
        "singular": "tuningstudy",
        "shortNames": ["ts", "study"],
        "categories": ["kubetune"],
    }


def test_version_served_stored_with_status_subresource(version: dict[str, Any]) -> None:
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def resolve(root: dict[str, Any], json_path: str) -> dict[str, Any]:
    """The schema node a printer column's simple JSONPath points at."""
    node = root
    path = re.sub(r"\[\?\(@\.[a-zA-Z]+==\"[A-Za-z]+\"\)\]", "[]", json_path)
    for part in re.findall(r"\.([A-Za-z]+)(\[\])?", path):
        node = node["properties"][part[0]]
        if part[1]:
            node = node["items"]
    return node


def test_printer_columns(version: dict[str, Any], root: dict[str, Any]) -> None:
    columns = version["additionalPrinterColumns"]
    assert [(c["name"], c.get("priority", 0)) for c in columns] == [
        ("Status", 0), ("Trials", 0), ("Running", 0), ("Best", 0), ("Front", 0),
        ("Age", 0),
        ("Metric", 1), ("Algorithm", 1), ("Reason", 1),  # -o wide
    ]
    by_name = {c["name"]: c for c in columns}
    assert by_name["Age"] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }
    assert by_name["Status"]["jsonPath"] == ".status.phase"
    assert by_name["Trials"]["jsonPath"] == ".status.progress"
    assert by_name["Best"]["jsonPath"] == ".status.bestValue"
    for name in ["Status", "Trials", "Running", "Best", "Metric", "Algorithm", "Reason"]:
        column = by_name[name]
        assert column["jsonPath"].startswith((".status.", ".spec.")), column
        node = resolve(root, column["jsonPath"])
        assert node["type"] == column["type"], (name, node)
        assert column["description"]
    assert resolve(root, by_name["Reason"]["jsonPath"]) is (
        root["properties"]["status"]["properties"]["conditions"]["items"]["properties"]["reason"]
    )
    phases = resolve(root, ".status.phase")["enum"]
    assert phases == ["Pending", "Running", "Suspended", "Succeeded", "Failed", "Invalid"]


# ---- structural schema ----------------------------------------------------------------------


def structural_problems(root: dict[str, Any]) -> list[str]:
    """What keeps ``root`` from being a structural schema the API server accepts."""
    problems = []
    for path, node in nodes(root):
        typed = (
            "type" in node
            or node.get("x-kubernetes-preserve-unknown-fields") is True
            or node.get("x-kubernetes-int-or-string") is True
        )
        if not typed:
            problems.append(f"{path}: no type")
        if "type" in node and node["type"] not in TYPES:
            problems.append(f"{path}: type {node['type']!r}")
        if FORBIDDEN & set(node):
            problems.append(f"{path}: {sorted(FORBIDDEN & set(node))}")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: both properties and additionalProperties")
        if "additionalProperties" in node and not isinstance(node["additionalProperties"], dict):
            problems.append(f"{path}: additionalProperties is not a schema")
        if "items" in node and not isinstance(node["items"], dict):
            problems.append(f"{path}: items is not one schema")
        if node.get("uniqueItems"):
            problems.append(f"{path}: uniqueItems (the API server refuses it)")
        if node.get("format", "date-time") not in FORMATS:
            problems.append(f"{path}: format {node['format']!r}")
        for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if exclusive in node and (node[exclusive] is not True or bound not in node):
                problems.append(f"{path}: {exclusive} must be true beside {bound} (OpenAPI 3.0)")
        if node.get("type") == "integer":
            for bound in ("minimum", "maximum"):
                if abs(node.get(bound, 0)) > 2**53:
                    problems.append(f"{path}: {bound} {node[bound]} is not exact as a double")
        missing = set(node.get("required") or []) - set(node.get("properties") or {})
        if missing:
            problems.append(f"{path}: required {sorted(missing)} not in properties")
    return problems


def unbounded(spec: dict[str, Any]) -> list[str]:
    """Strings, lists and maps under .spec without a size limit (jobTemplate excepted)."""
    out = []
    for path, node in nodes(spec, ".spec"):
        if path.startswith(".spec.jobTemplate"):
            continue
        kind = node.get("type")
        # An enum bounds a string as maxLength does: CEL estimates it by its longest value.
        if kind == "string" and "maxLength" not in node and "enum" not in node:
            out.append(f"{path}: string without maxLength")
        if kind == "array" and "maxItems" not in node:
            out.append(f"{path}: array without maxItems")
        if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
            out.append(f"{path}: map without maxProperties")
    return out


def test_schema_is_structural(root: dict[str, Any]) -> None:
    assert structural_problems(root) == []


def test_the_checks_see_problems() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "b": {"type": "array", "items": {"$ref": "#/x"}, "uniqueItems": True},
            "c": {"type": "number", "exclusiveMinimum": 0},
            "d": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
            "e": {"type": "integer", "maximum": 2**63 - 1},
            "f": {"type": "string", "format": "color"},
        },
        "required": ["g"],
    }
    found = "\n".join(structural_problems(bad))
    for path in (
        ".a: no type",
        ".a: ['anyOf']",
        ".b[]: no type",
        ".b[]: ['$ref']",
        ".b: uniqueItems",
        ".c: exclusiveMinimum",
        ".d: both",
        ".e: maximum",
        ".f: format",
        ".: required ['g']",
    ):
        assert path in found, path
    assert unbounded(bad) == [
        ".spec.b: array without maxItems",
        ".spec.d: map without maxProperties",
        ".spec.d{}: string without maxLength",
        ".spec.f: string without maxLength",
    ]


def test_metadata_is_left_to_the_api_server(root: dict[str, Any]) -> None:
    # A structural schema may restrict only metadata.name and generateName.
    assert root["properties"]["metadata"] == {"type": "object"}
    assert root["required"] == ["spec"]


def test_no_unions_anywhere(definition: dict[str, Any]) -> None:
    text = yaml.safe_dump(definition)
    for word in ("$ref", "anyOf", "oneOf", "allOf", "$defs", "title:"):
        assert word not in text, word


def test_job_template_preserves_unknown_fields(root: dict[str, Any]) -> None:
    node = root["properties"]["spec"]["properties"]["jobTemplate"]
    assert node["type"] == "object"
    assert node["x-kubernetes-preserve-unknown-fields"] is True
    assert "properties" not in node


def test_spec_strings_lists_and_maps_are_bounded(root: dict[str, Any]) -> None:
    # CEL's cost estimate and the annotation sizes rely on these bounds.
    assert unbounded(root["properties"]["spec"]) == []


def test_status_lists_are_bounded(root: dict[str, Any]) -> None:
    for path, node in nodes(root["properties"]["status"], ".status"):
        if node.get("type") == "array":
            assert "maxItems" in node, path


def test_conditions_are_a_list_map_keyed_by_type(root: dict[str, Any]) -> None:
    node = root["properties"]["status"]["properties"]["conditions"]
    assert node["x-kubernetes-list-type"] == "map"
    assert node["x-kubernetes-list-map-keys"] == ["type"]
    # A list-map key must be required (or defaulted) in every item.
    assert "type" in node["items"]["required"]


def test_cel_rules_of_the_design(root: dict[str, Any]) -> None:
    spec = root["properties"]["spec"]["properties"]

    def rules(node: dict[str, Any]) -> dict[str, str]:
        return {r["message"]: r["rule"] for r in node.get("x-kubernetes-validations") or []}

    assert rules(spec["objective"]) == {"is immutable": "self == oldSelf"}
    assert rules(spec["searchSpace"]) == {"is immutable": "self == oldSelf"}
    param = rules(spec["searchSpace"]["additionalProperties"])
    assert "self.low < self.high" in param["low must be below high"]
    assert "self.low > 0" in param["a log-scaled parameter needs low > 0"]
    assert (
        "self.parallelism <= self.maxTrials"
        in rules(spec["budget"])["parallelism must not exceed maxTrials"]
    )


def test_fields_have_descriptions(root: dict[str, Any]) -> None:
    # kubectl explain reads them: every field, the status's and the conditions' included.
    # (.metadata may hold nothing but its type; kubectl explain describes it from ObjectMeta.)
    missing = [path for path, node in nodes(root, "") if "description" not in node
               and path != ".metadata" and not path.endswith(("[]", "{}"))]
    assert missing == []


def test_descriptions_are_plain_text(root: dict[str, Any]) -> None:
    # kubectl explain prints them as they are: no reStructuredText markup.
    marked = [(path, node["description"]) for path, node in nodes(root, "")
              if "``" in node.get("description", "") or ":class:" in node.get("description", "")]
    assert marked == []


# ---- studies against the schema -------------------------------------------------------------


def test_design_example_validates(root: dict[str, Any]) -> None:
    assert errors(root, DESIGN_EXAMPLE) == []
    specs.parse_spec(DESIGN_EXAMPLE["spec"])  # and the models agree


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_validate(root: dict[str, Any], path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "TuningStudy":
            assert errors(root, doc) == []
            specs.parse_spec(doc["spec"])


def edited(change: str, value: Any) -> dict[str, Any]:
    """The DESIGN example with the dotted ``change`` path (under .spec) set to ``value``."""
    study = copy.deepcopy(DESIGN_EXAMPLE)
    *parents, last = change.split(".")
    node = study["spec"]
    for key in parents:
        node = node[key]
    node[last] = value
    return study


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("objective.metric", "m" * 129),
        ("objective.direction", "down"),
        ("searchSpace", {f"p{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(65)}),
        ("searchSpace", {}),
        ("searchSpace.optimizer.values", [f"v{i}" for i in range(257)]),
        ("searchSpace.optimizer.values", []),
        ("searchSpace.dropout.type", "double"),
        ("searchSpace.dropout.step", 0.0),
        ("searchSpace.dropout.high", 1e16),
        ("algorithm.name", "hyperband"),
        ("algorithm.seed", -1),
        ("budget.maxTrials", 0),
        ("budget.maxTrials", 10_001),
        ("budget.trialTimeoutSeconds", 0),
        ("earlyStopping.reductionFactor", 1),
        ("suspend", "yes"),
        ("jobTemplate", "a Job"),
    ],
)
def test_schema_refuses(root: dict[str, Any], change: str, value: Any) -> None:
    assert errors(root, edited(change, value)), f"{change}={value!r} accepted"


def test_nullable_fields_accept_null(root: dict[str, Any]) -> None:
    # Server-side apply and kubectl may send explicit nulls for optional fields.
    for change in (
        "objective.goal",
        "algorithm.seed",
        "budget.trialTimeoutSeconds",
        "searchSpace.dropout.step",
        "earlyStopping",
    ):
        assert errors(root, edited(change, None)) == [], change


def test_spec_needs_exactly_one_of_job_template_and_trial_template(root: dict[str, Any]) -> None:
    # Either may be absent from the schema's point of view; a CEL rule asks for exactly one
    # (tests/e2e/test_bad_input.py sees the API server apply it).
    study = copy.deepcopy(DESIGN_EXAMPLE)
    del study["spec"]["jobTemplate"]
    assert not errors(root, study)
    spec = root["properties"]["spec"]
    rules = [v["rule"] for v in spec["x-kubernetes-validations"]]
    assert "has(self.jobTemplate) != has(self.trialTemplate)" in rules


def test_defaults_validate_against_their_own_schema(root: dict[str, Any]) -> None:
    # The API server refuses a CRD whose defaults do not validate.
    for path, node in nodes(root):
        if "default" in node:
            assert errors(node, node["default"]) == [], path


def test_a_written_status_validates(root: dict[str, Any]) -> None:
    spec = {**DESIGN_EXAMPLE["spec"], "budget": {"maxTrials": 2, "parallelism": 1}}
    trials = [
        {
            "number": 0,
            "params": {"lr": 0.01, "batch_size": 32, "dropout": 0.1, "optimizer": "adam"},
            "state": "Succeeded",
            "value": 0.2,
            "job": "digits-mlp-0a1b2-0",
        },
        {
            "number": 1,
            "params": {"lr": 0.02, "batch_size": 64, "dropout": 0.2, "optimizer": "sgd"},
            "state": "Failed",
            "reason": "ExitCode",
        },
    ]
    plan = decide(spec, trials, 1714564800.0, suggest=lambda s, t, n: [])
    written = status.study_status(plan, {}, generation=1, now=1714564800.0)
    assert errors(root["properties"]["status"], written) == []
    stalled = status.invalid_status("spec: bad", written, generation=2, now=1714564900.0)
    assert errors(root["properties"]["status"], stalled) == []


def test_a_new_study_is_in_progress_until_the_operator_acts(root: dict[str, Any]) -> None:
    # kstatus reads a custom resource without status.observedGeneration and without conditions
    # as Current: helm --wait would return before the operator looked at the study. The status
    # defaults to observedGeneration 0 (InProgress for generation 1) and phase Pending.
    status = root["properties"]["status"]
    assert status["default"] == {}
    assert status["properties"]["observedGeneration"]["default"] == 0
    assert status["properties"]["phase"]["default"] == "Pending"
