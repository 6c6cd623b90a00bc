"""The SelfPlayRun CustomResourceDefinition, generated from the spec model `azr run` uses.

The pydantic model's JSON schema becomes a structural OpenAPI v3 schema: references inlined,
optional fields nullable, defaults kept (so the API server fills the same defaults as the
local launcher), every object defaulted to {} so nested defaults apply. CEL rules add what a
schema cannot say: immutable fields, a RuntimeClass named, and a name the run's children can
carry. `executor.sandbox` is not checked: in a cluster the executor pod is the gVisor sandbox
(its RuntimeClass) and its workers are rlimited processes inside it, whatever the field says.
"""

from __future__ import annotations

from typing import Any

from azr.spec import API_GROUP, KIND, RUN_NAME_MAX, RUN_NAME_PATTERN, SelfPlayRunSpec
from azr_operator.status import RunPhase

PLURAL = "selfplayruns"
VERSION = "v1alpha1"
KEPT = ("type", "description", "default", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
        "items", "properties", "minItems", "maxItems")

# Changing these mid-run would mix two experiments in one set of buffers and checkpoints.
IMMUTABLE = {"model": "model is immutable: start a new SelfPlayRun for another model",
             "method": "method is immutable: the buffers and checkpoints belong to these settings",
             "storage": "storage is immutable: the run's volume is created once"}


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema node as a Kubernetes structural schema node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        return structural({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express {schema} structurally")
        merged = {**options[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
        node = structural(merged, defs)
        node["nullable"] = True
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]  # the API server checks a null against the enum too
        return node
    node: dict[str, Any] = {}
    if "const" in schema:
        node["enum"] = [schema["const"]]
    for key, value in schema.items():
        if key not in KEPT:
            continue
        if key == "properties":
            node["properties"] = {name: structural(child, defs) for name, child in value.items()}
        elif key == "items":
            node["items"] = structural(value, defs)
        elif key == "default" and value is None:
            continue
        else:
            node[key] = value
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in schema:  # JSON Schema 2020's number form -> OpenAPI v3's boolean form
            node[flag] = schema[bound]
            node[bound] = True
    if node.get("type") == "object" and "properties" in node:
        for child in node["properties"].values():
            if child.get("type") == "object" and "default" not in child:
                child["default"] = {}
    if "type" not in node and "enum" in node:
        node["type"] = "string" if all(isinstance(v, str) for v in node["enum"]) else "integer"
    return node


def _set_defaults(node: dict[str, Any], value: Any) -> None:
    """Each leaf's default from an instance of the model, path by path: a field whose default
    comes from a factory (executor.resources: 2 CPUs, not Resources' 1) gets the right one."""
    if node.get("type") == "object" and "properties" in node and isinstance(value, dict):
        for name, child in node["properties"].items():
            _set_defaults(child, value.get(name))
    elif value is not None:
        node["default"] = value


def spec_schema() -> dict[str, Any]:
    raw = SelfPlayRunSpec.model_json_schema(by_alias=True, mode="validation")
    schema = structural(raw, raw.get("$defs", {}))
    _set_defaults(schema, SelfPlayRunSpec().model_dump(mode="json", by_alias=True))
    schema["x-kubernetes-validations"] = [
        *({"rule": f"self.{field} == oldSelf.{field}", "message": message} for field, message in IMMUTABLE.items()),
    ]
    return schema


STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "observedGeneration": {"type": "integer"},
        "phase": {"type": "string", "enum": [p.value for p in RunPhase]},
        "conditions": {"type": "array", "items": {"type": "object", "required": ["type", "status"], "properties": {
            "type": {"type": "string"}, "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"}, "message": {"type": "string"}, "lastTransitionTime": {"type": "string"},
            "observedGeneration": {"type": "integer"}}}},
        "replicas": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "desired": {"type": "integer"}, "ready": {"type": "integer"}}}},
        "progress": {"type": "object", "properties": {
            "step": {"type": "integer"}, "totalSteps": {"type": "integer"}, "policyVersion": {"type": "integer"},
            "phase": {"type": "string"}, "lastCheckpoint": {"type": "string"},
            "metrics": {"type": "object", "additionalProperties": {"type": "number"}}}},
        "ready": {"type": "string"},
    },
}


def custom_resource_definition() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {"kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL, "singular": KIND.lower(), "shortNames": ["spr"]},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Step", "type": "integer", "jsonPath": ".status.progress.step"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    # The API server checks only that a name is a DNS subdomain; the run's child
                    # names need more (the spec model says why).
                    "x-kubernetes-validations": [{
                        "rule": f"self.metadata.name.size() <= {RUN_NAME_MAX} && self.metadata.name.matches('{RUN_NAME_PATTERN}')",
                        "message": f"metadata.name must be a DNS-1035 label (a lowercase letter first, then lowercase "
                                   f"letters, digits and '-') of at most {RUN_NAME_MAX} characters: the run's children "
                                   f"are named after it"}],
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                        "spec": spec_schema(),
                        "status": STATUS_SCHEMA,
                    },
                }},
            }],
        },
    }
