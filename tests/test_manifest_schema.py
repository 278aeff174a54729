"""The manifest's JSON Schema: well formed, generated from the models, and the examples conform."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchgen.params import JOB_FIELDS
from batchgen.schema import manifest_json_schema

EXAMPLES = Path(__file__).resolve().parent.parent / "manifests"
TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def errors(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> list[str]:
    """The subset of JSON Schema pydantic emits, checked well enough to catch drift."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return errors(value, root["$defs"][name], root, where)
    if "anyOf" in schema:
        options = [errors(value, option, root, where) for option in schema["anyOf"]]
        return [] if any(not found for found in options) else [f"{where}: matches no option"]
    found = _type_errors(value, schema, where)
    if found:
        return found
    if isinstance(value, dict):
        return _object_errors(value, schema, root, where)
    if isinstance(value, list) and "items" in schema:
        return [
            e
            for i, item in enumerate(value)
            for e in errors(item, schema["items"], root, f"{where}[{i}]")
        ]
    return _value_errors(value, schema, where)


def _type_errors(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    kind = schema.get("type")
    if kind is None:
        return []
    if isinstance(value, bool) and kind in ("integer", "number"):
        return [f"{where}: bool is not {kind}"]
    return [] if isinstance(value, TYPES[kind]) else [f"{where}: not {kind}"]


def _object_errors(
    value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], where: str
) -> list[str]:
    properties = schema.get("properties", {})
    found = [
        f"{where}: {key} is required" for key in schema.get("required", []) if key not in value
    ]
    for key, item in value.items():
        if key in properties:
            found += errors(item, properties[key], root, f"{where}.{key}")
        elif schema.get("additionalProperties") is False:
            found.append(f"{where}: {key} is not allowed")
        elif isinstance(schema.get("additionalProperties"), dict):
            found += errors(item, schema["additionalProperties"], root, f"{where}.{key}")
    return found


def _value_errors(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: not one of {schema['enum']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        found.append(f"{where}: too long")
    if "minimum" in schema and value < schema["minimum"]:
        found.append(f"{where}: below minimum")
    if "maximum" in schema and value > schema["maximum"]:
        found.append(f"{where}: above maximum")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{where}: does not match {schema['pattern']}")
    return found


def test_schema_is_well_formed_json_schema() -> None:
    """The schema is JSON, declares draft 2020-12 and resolves every $ref it uses."""
    schema = json.loads(json.dumps(manifest_json_schema()))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    refs = set(re.findall(r'"#/\$defs/([^"]+)"', json.dumps(schema)))
    assert refs and refs <= set(schema["$defs"])


def test_schema_describes_every_job_field() -> None:
    """Rows and defaults list every image2video field; rows also take id, repeat, matrix, images."""
    defs = manifest_json_schema()["$defs"]
    assert set(defs["Row"]["properties"]) == JOB_FIELDS | {"id", "repeat", "matrix", "images"}
    assert set(defs["Defaults"]["properties"]) == JOB_FIELDS
    assert defs["Row"]["additionalProperties"] is True  # the user's own columns
    prompt = defs["Row"]["properties"]["prompt"]["anyOf"][0]
    assert prompt["maxLength"] == 500


@pytest.mark.parametrize(
    "name", ["demo.yaml", "matrix.yaml", "from-csv.yaml", "glob.yaml", "features.yaml"]
)
def test_example_manifests_conform_to_the_schema(name: str) -> None:
    """Each example YAML manifest is valid against the generated schema."""
    schema = manifest_json_schema()
    document = yaml.safe_load((EXAMPLES / name).read_text())
    assert errors(document, schema, schema) == []


@pytest.mark.parametrize(
    "document",
    [
        {"rows": [{"prompt": "x" * 501}]},
        {"repeat": 0, "rows": []},
        {"rows": [{"mode": "fast"}]},
        {"defaults": {"cfg_scale": 2}},
        {"colour": "red"},
    ],
)
def test_schema_rejects_broken_manifests(document: dict[str, Any]) -> None:
    """Documents that break a field rule do not conform (the checker is not a rubber stamp)."""
    schema = manifest_json_schema()
    assert errors(document, schema, schema) != []
