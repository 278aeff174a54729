"""The manifest's JSON Schema: well formed, generated from the models and tables, and in
agreement with `validate` on every example and on a set of broken manifests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from batchgen.errors import Problem
from batchgen.manifest.fieldnames import KNOWN_KEYS, MISSPELT_PATTERNS, misspelt
from batchgen.manifest.params import JOB_FIELDS
from batchgen.manifest.resolve import check_manifest, resolve_manifest
from batchgen.manifest.schema import manifest_json_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests"
SCHEMA = manifest_json_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def schema_fields(document: Any) -> set[str]:
    """The top-level fields (or header keys) the schema's errors name."""
    return {name for error in VALIDATOR.iter_errors(document) for name in _named(error)}


def _named(error: jsonschema.ValidationError) -> list[str]:
    raw = list(error.absolute_path)
    if raw[:1] == ["rows"] and len(raw) > 1:
        raw = raw[2:]  # a row's own field
    path = [str(part) for part in raw if not isinstance(part, int)]
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return [".".join([*path, *missing])]
    if error.validator == "additionalProperties":
        names = re.findall(r"'([^']+)' (?:was|does not match)", error.message)
        return [".".join([*path, name]) for name in names]
    if path[:1] in (["defaults"], ["matrix"]):
        return [".".join(path[:2])]
    return [path[0] if path else "(manifest)"]


def validate_fields(path: Path) -> set[str]:
    """The fields the problems of `batchgen validate` name (top level of the field path)."""
    report = check_manifest(resolve_manifest(path))
    return {_top(problem) for problem in report.problems}


def _top(problem: Problem) -> str:
    parts = problem.field.split(".")
    return ".".join(parts[:2]) if parts[0] in ("defaults", "matrix") else parts[0]


def test_schema_is_well_formed_json_schema() -> None:
    """The schema is JSON, a valid draft 2020-12 schema, and resolves every $ref it uses."""
    schema = json.loads(json.dumps(SCHEMA))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    refs = set(re.findall(r'"#/\$defs/([^"]+)"', json.dumps(schema)))
    assert refs and refs <= set(schema["$defs"])


def test_schema_describes_every_job_field() -> None:
    """Rows and defaults list every image2video field; rows also take id, repeat, matrix, images;
    the enums are the catalogue's."""
    defs = SCHEMA["$defs"]
    declared = set(defs["Row"]["properties"])
    assert JOB_FIELDS | {"id", "repeat", "matrix", "images"} <= declared
    assert set(defs["Defaults"]["properties"]) >= JOB_FIELDS
    assert defs["Row"]["additionalProperties"] is True  # the user's own columns
    assert defs["Row"]["properties"]["mode"]["anyOf"][0]["enum"] == ["std", "pro", "4k"]
    assert defs["Row"]["properties"]["sound"]["anyOf"][0]["enum"] == ["on", "off"]
    assert defs["Row"]["properties"]["prompt"]["anyOf"][0]["maxLength"] == 500


def test_schema_and_validate_use_the_same_misspelling_patterns() -> None:
    """Each known key has its pattern in the schema, exactly as `validate` compiles it."""
    patterns = SCHEMA["$defs"]["Row"]["patternProperties"]
    assert set(MISSPELT_PATTERNS.values()) <= set(patterns)
    assert len(MISSPELT_PATTERNS) == len(KNOWN_KEYS)


EDITS = st.sampled_from([key for key in KNOWN_KEYS if len(key) >= 5])


# No deadline: a first example that warms the validators up on a loaded machine is no failure.
@settings(deadline=None)
@given(EDITS, st.integers(0, 20), st.sampled_from("abcxyz_"))
def test_one_edit_of_a_field_name_is_refused_by_both(key: str, at: int, char: str) -> None:
    """Inserting, deleting or replacing one character of a field name (not making another known
    key) is a misspelling for `validate` and for the schema alike."""
    at = at % len(key)
    for variant in (
        key[:at] + char + key[at:],
        key[:at] + key[at + 1 :],
        key[:at] + char + key[at + 1 :],
    ):
        if variant in KNOWN_KEYS or not variant:
            continue
        refused_by_schema = not VALIDATOR.is_valid({"rows": [{"image": "a", variant: 1}]})
        assert misspelt(variant) is not None and refused_by_schema, variant


@given(st.text(min_size=1, max_size=12))
def test_meta_keys_are_never_refused(name: str) -> None:
    """Any `meta.` key is metadata, for `validate` and the schema."""
    key = "meta." + name
    assert misspelt(key) is None
    assert VALIDATOR.is_valid({"rows": [{"image": "a", key: 1}]})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, colour in (("a.png", 10), ("b.png", 200)):
        Image.new("RGB", (480, 320), (colour, 90, 160)).save(tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_is_valid_for_the_schema_and_for_validate(name: str) -> None:
    """The examples conform to the schema, and `validate` finds no problem in them."""
    document = yaml.safe_load((EXAMPLES / name).read_text())
    assert schema_fields(document) == set()
    assert validate_fields(EXAMPLES / name) == set()


ROW = {"id": "r", "image": "a.png"}
V3 = {"model_name": "kling-v3", "mode": "pro", "duration": 8}
BROKEN: list[tuple[dict[str, Any], set[str]]] = [
    ({"rows": [{**ROW, "promt": "x"}]}, {"promt"}),
    ({"rows": [{**ROW, "Prompt": "x"}]}, {"Prompt"}),
    ({"rows": [{**ROW, "model": "kling-v1"}]}, {"model"}),
    ({"rows": [{**ROW, "external_task_id": "x"}]}, {"external_task_id"}),
    (
        {"rows": [{**ROW, "model_name": "kling-v1", "promt": "x", "mode": "fast", "duration": 7}]},
        {"promt", "mode", "duration"},
    ),
    ({"rows": [{**ROW, "mode": "ultra"}]}, {"mode"}),
    ({"rows": [{**ROW, "duration": 20}]}, {"duration"}),
    ({"rows": [{**ROW, "sound": "loud"}]}, {"sound"}),
    ({"rows": [{**ROW, "prompt": "x" * 501}]}, {"prompt"}),
    ({"rows": [{**ROW, "model_name": "kling-v1", "cfg_scale": 2}]}, {"cfg_scale"}),
    ({"rows": [{**ROW, "model_name": "kling-v1", "sound": "on"}]}, {"sound"}),
    ({"rows": [{**ROW, "model_name": "kling-v2-6", "mode": "4k"}]}, {"mode"}),
    ({"rows": [{**ROW, "model_name": "kling-v2-master", "mode": "std"}]}, {"mode"}),
    ({"rows": [{**ROW, "model_name": "kling-v2-6", "duration": 8}]}, {"duration"}),
    ({"rows": [{**ROW, "model_name": "kling-v2-1", "cfg_scale": 0.5}]}, {"cfg_scale"}),
    (
        {"rows": [{**ROW, "model_name": "kling-v2-6", "element_list": [{"element_id": 1}]}]},
        {"element_list"},
    ),
    ({"rows": [{**ROW, **V3, "element_list": [{"element_id": 1}] * 4}]}, {"element_list"}),
    (
        {"rows": [{**ROW, **V3, "sound": "on", "voice_list": [{"voice_id": "v"}] * 3}]},
        {"voice_list"},
    ),
    (
        {"rows": [{**ROW, **V3, "multi_shot": True, "shot_type": "customize",
                   "multi_prompt": [{"prompt": "x", "duration": 1}] * 8}]},
        {"multi_prompt"},
    ),
    (
        {"rows": [{**ROW, **V3, "sound": "on", "prompt": "<<<voice_1>>>",
                   "voice_list": [{"voice_id": "v"}], "element_list": [{"element_id": 1}]}]},
        {"element_list"},
    ),
    (
        {"rows": [{**ROW, **V3, "sound": "off", "prompt": "<<<voice_1>>>",
                   "voice_list": [{"voice_id": "v"}]}]},
        {"sound"},
    ),
    ({"rows": [{**ROW, "images": "*.png"}]}, {"images"}),
    (
        {"rows": [{**ROW, "model_name": "kling-v1-5", "mode": "pro", "image_tail": "b.png",
                   "camera_control": {"type": "simple", "config": {"zoom": 1}}}]},
        {"camera_control"},
    ),
    ({"rows": [{**ROW, "id": "a/b"}]}, {"id"}),
    ({"rows": [{**ROW, "repeat": 0}]}, {"repeat"}),
    ({"rows": []}, {"rows"}),
    ({"defaults": {"model_name": "kling-v1"}}, {"rows"}),
    ({"colour": "red", "rows": [ROW]}, {"colour"}),
    ({"repeat": 0, "rows": [ROW]}, {"repeat"}),
    ({"name": "a/b", "rows": [ROW]}, {"name"}),
    ({"defaults": {"cfg_scale": 2}, "rows": [ROW]}, {"defaults.cfg_scale"}),
    ({"defaults": {"Mode": "pro"}, "rows": [ROW]}, {"defaults.Mode"}),
    ({"defaults": {"id": "x"}, "rows": [ROW]}, {"defaults.id"}),
    ({"matrix": {"colour": ["red"]}, "rows": [ROW]}, {"matrix.colour"}),
    ({"matrix": {"mode": ["std", "fast"]}, "rows": [ROW]}, {"matrix.mode"}),
]  # fmt: skip


@pytest.mark.parametrize(("document", "fields"), BROKEN)
def test_schema_and_validate_refuse_the_same_broken_manifests(
    folder: Path, document: dict[str, Any], fields: set[str]
) -> None:
    """Each broken manifest is invalid for both, and both name the same fields."""
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert schema_fields(document) == fields
    assert validate_fields(path) == fields


VALIDATE_ONLY: list[tuple[dict[str, Any], str]] = [
    ({"defaults": {"model_name": "kling-v1"}, "rows": [{**ROW, "sound": "on"}]}, "sound"),
    ({"rows": [{**ROW, "model_name": "kling-v2-6", "mode": "std", "sound": "on"}]}, "sound"),
    ({"rows": [{"id": "r", "image": "missing.png"}]}, "image"),
    ({"rows": [{**ROW, **V3, "multi_shot": True}]}, "shot_type"),
]  # fmt: skip


@pytest.mark.parametrize(("document", "field"), VALIDATE_ONLY)
def test_rules_the_schema_cannot_say_are_left_to_validate(
    folder: Path, document: dict[str, Any], field: str
) -> None:
    """Values set elsewhere (defaults), mode-and-duration pairs, files, and rules between fields
    that defaults could satisfy: the schema accepts, `validate` refuses."""
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert schema_fields(document) == set()
    assert validate_fields(path) == {field}
