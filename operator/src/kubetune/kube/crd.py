"""The TuningStudy CustomResourceDefinition, generated from the pydantic models in
``kubetune.core.spec`` (the single source of the schema). Pure; ``python -m kubetune.kube.crd``
prints it as YAML (``make crds`` writes crds/tuningstudy.yaml, and a test fails on drift).

pydantic's JSON Schema is turned into a structural OpenAPI v3 schema: references inlined,
``Optional`` as ``nullable``, mixed-type values as ``x-kubernetes-preserve-unknown-fields``,
titles dropped, and the models' CEL rules (``x-kubernetes-validations``) kept.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from kubetune.core.spec import StudySpec, StudyStatus
from kubetune.kube import conventions as names

__all__ = ["PRINTER_COLUMNS", "crd", "crd_yaml", "structural"]

_DROP = {"title", "$defs", "additionalProperties", "discriminator", "propertyNames"}


_RULES = "x-kubernetes-validations"
_READY = '.status.conditions[?(@.type=="Ready")]'
# `kubectl get ts`; priority 1 columns show with `-o wide`. TRIALS and BEST are strings the
# operator writes (status.progress, status.bestValue): a jsonPath can neither divide nor round.
# BEST is empty for a study with several objectives and FRONT for one with a single objective.
PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Status", "type": "string", "jsonPath": ".status.phase",
     "description": "Pending, Running, Suspended, Succeeded, Failed or Invalid"},
    {"name": "Trials", "type": "string", "jsonPath": ".status.progress",
     "description": "trials done (Succeeded, Failed, Pruned) over maxTrials"},
    {"name": "Running", "type": "integer", "jsonPath": ".status.trials.running",
     "description": "trials running now"},
    {"name": "Best", "type": "string", "jsonPath": ".status.bestValue",
     "description": "the best objective value so far, to 6 significant digits"},
    {"name": "Front", "type": "integer", "jsonPath": ".status.frontSize",
     "description": "several objectives: the trials on the Pareto front"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Metric", "type": "string", "jsonPath": ".spec.objective.metric", "priority": 1,
     "description": "the objective's metric"},
    {"name": "Algorithm", "type": "string", "jsonPath": ".spec.algorithm.name", "priority": 1,
     "description": "the sampler"},
    {"name": "Reason", "type": "string", "jsonPath": f"{_READY}.reason", "priority": 1,
     "description": "why the study is in its phase, e.g. MaxTrialsReached"},
]
_API_VERSION = ("The versioned schema of this object: kubetune.dev/v1alpha1. See "
                "https://git.k8s.io/community/contributors/devel/sig-architecture/"
                "api-conventions.md#resources")
_KIND = ("The kind of this object: TuningStudy. See https://git.k8s.io/community/contributors/"
         "devel/sig-architecture/api-conventions.md#types-kinds")


def _inline(schema: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(schema, list):
        return [_inline(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _inline({**target, **rest}, defs)
    return {k: _inline(v, defs) for k, v in schema.items()}


def structural(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema (refs already inlined) as a structural OpenAPI v3 schema."""
    out: dict[str, Any] = {}
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        concrete = [v for v in variants if v.get("type") != "null"]
        nullable = len(concrete) < len(variants)
        if len(concrete) == 1:
            # The field's own description and rules (e.g. immutability) with the type's.
            outer = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            merged = {**concrete[0], **outer}
            rules = [*concrete[0].get(_RULES, []), *outer.get(_RULES, [])]
            if rules:
                merged[_RULES] = rules
            out = structural(merged)
        else:
            # Values of several types (a categorical value: string, number or boolean).
            out = {"x-kubernetes-preserve-unknown-fields": True}
            if "description" in schema:
                out["description"] = schema["description"]
        if nullable:
            out["nullable"] = True
        if "default" in schema and schema["default"] is None:
            out.pop("default", None)
        return out
    for key, value in schema.items():
        if key in _DROP or key in ("anyOf", "oneOf"):
            continue
        if key == "properties":
            out["properties"] = {k: structural(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = structural(value)
        elif key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "default" and value is None:
            continue
        elif key == "maxProperties" or key == "minProperties":
            out[key] = value
        else:
            out[key] = value
    if out.get("type") == "integer" and abs(out.get("maximum", 0)) > 2**53:
        del out["maximum"]  # the apiserver reads bounds as doubles: int64's max does not fit
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = structural(extra)
    if schema.get("type") == "object" and "properties" not in out and "additionalProperties" \
            not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _model_schema(
    model: type[BaseModel], mode: Literal["validation", "serialization"]
) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode=mode)
    return structural(_inline(raw, raw.get("$defs", {})))


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    spec_schema = _model_schema(StudySpec, "validation")
    status_schema = _model_schema(StudyStatus, "serialization")
    spec_schema.pop("nullable", None)
    # A status from the start (its nested defaults: observedGeneration 0, phase Pending), so
    # that a study the operator has not acted on yet reads as InProgress to kstatus.
    status_schema["default"] = {}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{names.PLURAL}.{names.GROUP}",
            "labels": {"app.kubernetes.io/name": "kubetune",
                       "app.kubernetes.io/part-of": "kubetune"},
        },
        "spec": {
            "group": names.GROUP,
            "names": {
                "kind": names.KIND, "listKind": f"{names.KIND}List", "plural": names.PLURAL,
                "singular": "tuningstudy", "shortNames": ["ts", "study"],
                "categories": ["kubetune"],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": names.VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A hyperparameter tuning study: a search space, an objective, "
                                   "a budget and a Job template for one trial.",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string", "description": _API_VERSION},
                        "kind": {"type": "string", "description": _KIND},
                        # The API server allows nothing else here (kubectl explain describes it).
                        "metadata": {"type": "object"},
                        "spec": spec_schema,
                        "status": status_schema,
                    },
                }},
            }],
        },
    }


def crd_yaml() -> str:
    header = "# Generated from kubetune.core.spec by `make crds`; do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(crd_yaml())
