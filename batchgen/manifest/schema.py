"""The JSON Schema of a YAML manifest, generated from the models and tables that validate it.

Editors use it for completion and early errors (e.g. a `# yaml-language-server: $schema=...`
line). It is as strict as `batchgen validate` wherever JSON Schema can say a rule from the
object it is in:

- every field's own rules (`params`): types, enums of the catalogue (mode std/pro/4k, duration
  3..15, sound on/off, shot_type), ranges, lengths;
- keys: the fields and control keys; `meta.*` and the user's own columns are allowed, except a
  key that looks like a misspelt field, refused by the very patterns `validate` uses
  (`fieldnames.MISSPELT_PATTERNS`), and the provider fields batchgen does not send;
- a row or `defaults` that names its `model_name`: that model's modes and durations, and the
  fields it does not take at all (`capabilities`);
- within a row: `image` with `images`, two groups of extras (end frame, motion brush, camera
  control), voice_list with element_list or with `sound: off`;
- matrix axes are job fields, their values valid for the field;
- a manifest has rows, or an `images:` glob; names and ids are usable file names.

What it cannot say, `validate` does: rules that depend on values set elsewhere (a model from
`defaults`, a mode from the matrix, the API's defaults), on pairs of mode and duration, and
everything about the images themselves.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ConfigDict, Field, create_model

from batchgen.manifest.capabilities import CAPABILITIES, FEATURES, Capability
from batchgen.manifest.fieldnames import CONTROL_KEYS, META_PREFIX, MISSPELT_PATTERNS, NOT_SENT
from batchgen.manifest.params import JOB_FIELDS, JobParams
from batchgen.manifest.source import EXTENSION_PREFIX, MAX_REPEAT, NAME_RULE, ManifestHeader, Matrix

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
NAME_PATTERN = r"^(?!.*__)[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
NULL = {"type": "null"}
UNSET: list[Any] = [None, False, "", []]  # values validate treats as "not set" for a feature


class Defaults(JobParams):
    """Fields every row gets unless it sets them; other keys are metadata defaults."""

    model_config = ConfigDict(extra="allow", title="Defaults")


class Row(JobParams):
    """One row: job fields, control keys, and the user's own columns (kept as metadata)."""

    model_config = ConfigDict(extra="allow", title="Row")

    id: str | int | None = Field(None, description=f"Row id: {NAME_RULE}. Default: position.")
    repeat: int | None = Field(None, ge=1, le=MAX_REPEAT, description="Samples of this row.")
    matrix: Matrix | None = Field(None, description="Axes for this row only.")
    images: str | None = Field(None, description="A glob: one row per matching file.")


Manifest = create_model(
    "Manifest",
    __base__=ManifestHeader,
    __doc__="A batchgen manifest: image + prompt rows to turn into Kling image2video jobs.",
    defaults=(Defaults, Field(default_factory=Defaults)),
    matrix=(
        Matrix,
        Field(default_factory=dict, description=ManifestHeader.model_fields["matrix"].description),
    ),
    rows=(list[Row] | str | None, Field(None, description="Rows, or a CSV file of rows.")),
)


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a YAML manifest."""
    schema = Manifest.model_json_schema()
    defs = schema["$defs"]
    fields = {name: defs["Row"]["properties"][name] for name in JOB_FIELDS}
    schema["properties"]["matrix"] = _matrix(fields)
    schema["properties"]["rows"] = {
        "type": ["array", "string", "null"],
        "items": {"$ref": "#/$defs/Row"},
        "description": "Rows, or the path of a CSV file of rows (relative to the manifest).",
    }
    schema["properties"]["name"]["anyOf"][0]["pattern"] = NAME_PATTERN
    schema["if"] = {"not": {"required": ["images"]}}
    schema["then"] = {"required": ["rows"], "properties": {"rows": {"minItems": 1}}}
    _keys(defs["Defaults"], misplaced=CONTROL_KEYS)
    _keys(defs["Row"])
    _row_rules(defs["Row"], fields)
    defs["Defaults"]["allOf"] = _model_rules()
    return {
        "$schema": SCHEMA_DIALECT,
        **schema,
        "title": "batchgen manifest",
        "patternProperties": {f"^{EXTENSION_PREFIX}": {}},
    }


def _refused(why: str) -> dict[str, Any]:
    return {"not": {}, "description": why}


def _keys(model: dict[str, Any], misplaced: frozenset[str] = frozenset()) -> None:
    """Known keys as declared; `meta.*` and user columns allowed; misspellings refused."""
    keep = f"name it '{META_PREFIX}<key>' to keep it as metadata"
    for key, why in NOT_SENT.items():
        model["properties"][key] = _refused(f"{why} ({keep})")
    for key in misplaced:
        model["properties"][key] = _refused("goes at the top level or in a row")
    patterns = {
        pattern: _refused(f"looks like a misspelling of '{key}' ({keep})")
        for key, pattern in MISSPELT_PATTERNS.items()
    }
    model["patternProperties"] = {f"^{re.escape(META_PREFIX)}": {}, **patterns}
    model["additionalProperties"] = True


def _matrix(fields: dict[str, Any]) -> dict[str, Any]:
    """Axes are job fields; each value (in a list, or a {label: value} mapping) is valid."""
    axes = {
        name: {
            "type": ["array", "object"],
            "items": field,
            "minItems": 1,
            "additionalProperties": field,
            "propertyNames": {"pattern": "^[A-Za-z0-9.-]{1,24}$"},
            "minProperties": 1,
        }
        for name, field in sorted(fields.items())
    }
    return {
        "type": "object",
        "properties": axes,
        "additionalProperties": _refused("not a job field (axes are fields: mode, duration...)"),
        "description": ManifestHeader.model_fields["matrix"].description,
    }


def _row_rules(row: dict[str, Any], fields: dict[str, Any]) -> None:
    row["properties"]["matrix"] = {**_matrix(fields), "type": ["object", "null"]}
    ids = row["properties"]["id"]["anyOf"]
    ids[0]["pattern"] = NAME_PATTERN
    ids[1]["minimum"] = 0
    row["properties"]["repeat"]["anyOf"].append({"type": "string", "pattern": r"^\s*[0-9]+\s*$"})
    row["allOf"] = _model_rules() + _relations()


def _set(name: str) -> dict[str, Any]:
    """`name` is in the object with a value that counts as set."""
    return {"required": [name], "properties": {name: {"not": {"enum": UNSET}}}}


def _when(condition: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    return {"if": condition, "then": {"properties": then}}


def _relations() -> list[dict[str, Any]]:
    """The rules of `relations` that one row can break on its own."""
    return [
        _when({"required": ["image"]}, {"images": NULL}),
        _when(
            _set("image_tail"),
            {f: {"enum": UNSET} for f in ("static_mask", "dynamic_masks", "camera_control")},
        ),
        _when(
            {"anyOf": [_set("static_mask"), _set("dynamic_masks")]},
            {"camera_control": {"enum": UNSET}},
        ),
        _when(_set("voice_list"), {"element_list": NULL, "sound": {"not": {"const": "off"}}}),
    ]


def _model_rules() -> list[dict[str, Any]]:
    """For each model: the modes, durations and fields it takes, when the object names it."""
    return [
        _when(
            {"required": ["model_name"], "properties": {"model_name": {"const": model}}},
            _model_fields(capability),
        )
        for model, capability in CAPABILITIES.items()
    ]


def _model_fields(capability: Capability) -> dict[str, Any]:
    numbers = "|".join(capability.durations)
    durations = [int(d) for d in capability.durations]
    found: dict[str, Any] = {
        "mode": {"enum": [*capability.modes, None]},
        "duration": {
            "anyOf": [
                {"type": "integer", "enum": durations},
                {"type": "string", "pattern": rf"^\s*0*({numbers})\s*$"},
                NULL,
            ]
        },
    }
    if not capability.cfg_scale:
        found["cfg_scale"] = NULL
    if not capability.sound:
        found["sound"] = NULL
    for attribute, (names, _) in FEATURES.items():
        if not getattr(capability, attribute):
            found |= {name: {"enum": UNSET} for name in names}
    return found
