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

__all__ = ["crd", "crd_yaml", "structural"]

_DROP = {"title", "$defs", "additionalProperties", "discriminator", "propertyNames"}


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
            merged = {**{k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")},
                      **concrete[0]}
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
                "additionalPrinterColumns": [
                    {"name": "Status", "type": "string",
                     "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
                     "description": "what the study is doing, or why it ended"},
                    {"name": "Trials", "type": "integer", "jsonPath": ".status.trials.total"},
                    {"name": "Running", "type": "integer", "jsonPath": ".status.trials.running"},
                    {"name": "Best", "type": "number", "jsonPath": ".status.bestTrial.value"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A hyperparameter tuning study: a search space, an objective, "
                                   "a budget and a Job template for one trial.",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
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
